"""Recording and reading audit events (inside the caller's transaction, so a change and its
audit row commit or roll back together)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.audit.models import AuditEvent
from aiqleads.kit.writes import Writes


def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    subject_type: str,
    subject_id: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
    writes: Writes | None = None,
) -> AuditEvent:
    """Add an audit event to the session (or queue it in `writes`); the request id comes from
    the log context."""
    event = AuditEvent(
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        detail=detail or {},
        created_at=at,
    )
    (writes.add if writes is not None else session.add)(event)
    return event


async def events(
    session: AsyncSession,
    *,
    subject_type: str | None,
    subject_id: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AuditEvent]:
    """Newest first, optionally for one subject."""
    query = sa.select(AuditEvent)
    if subject_type:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id:
        query = query.where(AuditEvent.subject_id == subject_id)
    if after is not None:
        query = query.where(sa.tuple_(AuditEvent.created_at, AuditEvent.id) < after)
    query = query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(await session.scalars(query))
