"""Operators read the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from aiqleads.accounts.deps import AdminUser
from aiqleads.audit import service
from aiqleads.kit.deps import SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/admin/audit", tags=["admin: audit"])


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    actor_id: uuid.UUID | None
    action: str
    subject_type: str
    subject_id: str
    request_id: str | None
    detail: dict[str, Any]
    created_at: datetime


@router.get("", response_model=Page[AuditEventOut])
async def audit_events(
    admin: AdminUser,
    session: SessionDep,
    subject_type: str | None = None,
    subject_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[AuditEventOut]:
    """Who changed what, newest first; filter by subject (e.g. `pricing_config`, `las-vegas`)."""
    after = decode_cursor(cursor) if cursor else None
    rows = await service.events(
        session, subject_type=subject_type, subject_id=subject_id, after=after, limit=limit + 1
    )
    return page_of(rows, limit, AuditEventOut.model_validate, lambda r: (r.created_at, r.id))
