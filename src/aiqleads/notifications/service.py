"""Sending a notification where the user wants it: in the app, by e-mail, both or neither."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.accounts.schemas import NotificationPreferences
from aiqleads.kit.errors import NotFound
from aiqleads.kit.writes import Writes
from aiqleads.mail.service import queue_email
from aiqleads.notifications.models import Notification
from aiqleads.runtime import Runtime


async def notify(
    session: AsyncSession,
    runtime: Runtime,
    user: User,
    *,
    topic: str,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any] | None = None,
    email_body: str | None = None,
    writes: Writes | None = None,
) -> list[str]:
    """Notify `user` about `topic` (a NotificationPreferences switch, e.g.
    "new_matching_leads"); returns the channels used. `email_body` replaces `body` in the
    e-mail (what is delivered once, such as a purchased lead's contact details, rather than
    kept in the app). With `writes`, the rows are queued there instead of added to the
    session."""
    prefs = NotificationPreferences.model_validate(user.notification_preferences)
    if not getattr(prefs, topic):
        return []
    channels = []
    if prefs.in_app:
        (writes.add if writes is not None else session.add)(
            Notification(
                user_id=user.id,
                kind=kind,
                title=title[:200],
                body=body,
                data=data or {},
                created_at=runtime.clock.now(),
            )
        )
        channels.append("in_app")
    if prefs.email:
        await queue_email(
            session,
            runtime,
            kind=kind,
            to=user.email,
            subject=title,
            body=email_body or body,
            writes=writes,
        )
        channels.append("email")
    return channels


async def inbox(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    unread: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Notification]:
    query = sa.select(Notification).where(Notification.user_id == user_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if after is not None:
        query = query.where(sa.tuple_(Notification.created_at, Notification.id) < after)
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def mark_read(
    session: AsyncSession, user_id: uuid.UUID, at: datetime, notification_id: uuid.UUID | None
) -> int:
    """Mark one notification (or, with None, all of them) read; returns how many changed."""
    stmt = sa.update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        stmt = stmt.where(Notification.id == notification_id)
    result = await session.execute(stmt.values(read_at=at))
    changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if notification_id is not None and not changed:
        exists = await session.scalar(
            sa.select(Notification.id).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )
        if exists is None:
            raise NotFound("No such notification", code="notification_not_found")
    return changed
