"""All SQL of the e-mail outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.mail.models import EmailStatus, OutboundEmail


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Waiting for an attempt, or held by a sender whose lease lapsed (it crashed)."""
    return sa.or_(
        sa.and_(OutboundEmail.status == EmailStatus.PENDING, OutboundEmail.next_attempt_at <= now),
        sa.and_(OutboundEmail.status == EmailStatus.SENDING, OutboundEmail.locked_until < now),
    )


class EmailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, email: OutboundEmail) -> OutboundEmail:
        self.session.add(email)
        await self.session.flush()
        return email

    async def get(self, email_id: uuid.UUID) -> OutboundEmail | None:
        return await self.session.get(OutboundEmail, email_id)

    async def claim(self, email_id: uuid.UUID, now: datetime, lease_until: datetime) -> bool:
        """Atomically take a due message for sending; False if another sender has it."""
        result = await self.session.execute(
            sa.update(OutboundEmail)
            .where(OutboundEmail.id == email_id, _due(now))
            .values(
                status=EmailStatus.SENDING,
                locked_until=lease_until,
                attempts=OutboundEmail.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def due_ids(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Messages waiting for an attempt, or stuck in a sender that crashed."""
        rows = await self.session.scalars(
            sa.select(OutboundEmail.id)
            .where(_due(now))
            .order_by(OutboundEmail.next_attempt_at)
            .limit(limit)
        )
        return list(rows)

    async def page(
        self, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[OutboundEmail]:
        """Newest first, keyset-paginated on (created_at, id)."""
        query = sa.select(OutboundEmail)
        if before is not None:
            created_at, row_id = before
            query = query.where(
                sa.or_(
                    OutboundEmail.created_at < created_at,
                    sa.and_(OutboundEmail.created_at == created_at, OutboundEmail.id < row_id),
                )
            )
        query = query.order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc()).limit(
            limit
        )
        return list(await self.session.scalars(query))

    async def requeue_failed(
        self, now: datetime, limit: int, email_id: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """Failed messages (the one, or the oldest `limit`) back to `pending`, due now, with
        a fresh count of attempts; returns their ids."""
        query = sa.select(OutboundEmail.id).where(OutboundEmail.status == EmailStatus.FAILED)
        if email_id is not None:
            query = query.where(OutboundEmail.id == email_id)
        ids = list(
            await self.session.scalars(query.order_by(OutboundEmail.created_at).limit(limit))
        )
        if ids:
            await self.session.execute(
                sa.update(OutboundEmail)
                .where(OutboundEmail.id.in_(ids), OutboundEmail.status == EmailStatus.FAILED)
                .values(status=EmailStatus.PENDING, attempts=0, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids
