"""All SQL of checkout: the buyer's holds and their leads, locked; purchases read back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.checkout.models import Purchase
from aiqleads.leads.models import Lead


class CheckoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_held_leads(self, buyer_id: uuid.UUID) -> dict[uuid.UUID, Lead]:
        """The leads the buyer holds (lapsed holds not yet ended included), their rows locked
        in id order (the order every locker uses, so two checkouts over the same leads queue
        rather than deadlock) and read afresh."""
        held = sa.select(Hold.lead_id).where(
            Hold.buyer_id == buyer_id, Hold.status == HoldStatus.ACTIVE
        )
        rows = await self.session.scalars(
            sa.select(Lead)
            .where(Lead.id.in_(held))
            .order_by(Lead.id)
            .with_for_update(of=Lead)
            .execution_options(populate_existing=True)
        )
        return {lead.id: lead for lead in rows}

    async def active_holds(self, buyer_id: uuid.UUID, lead_ids: Sequence[uuid.UUID]) -> list[Hold]:
        """The buyer's active holds on these leads as committed now (read after the leads are
        locked, so a checkout that waited sees what the one before it did)."""
        rows = await self.session.scalars(
            sa.select(Hold)
            .where(
                Hold.buyer_id == buyer_id,
                Hold.status == HoldStatus.ACTIVE,
                Hold.lead_id.in_(lead_ids),
            )
            .order_by(Hold.lead_id)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def purchases(
        self,
        buyer_id: uuid.UUID,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[tuple[Purchase, Lead]]:
        """The buyer's purchases with their leads, newest first."""
        query = (
            sa.select(Purchase, Lead)
            .join(Lead, Lead.id == Purchase.lead_id)
            .where(Purchase.buyer_id == buyer_id)
        )
        if after is not None:
            query = query.where(sa.tuple_(Purchase.created_at, Purchase.id) < after)
        query = query.order_by(Purchase.created_at.desc(), Purchase.id.desc()).limit(limit)
        return [(p, lead) for p, lead in (await self.session.execute(query)).all()]

    async def stream_purchases(
        self, buyer_id: uuid.UUID, batch: int = 500
    ) -> AsyncIterator[tuple[Purchase, Lead]]:
        """Every purchase of the buyer with its lead, oldest first, a page at a time."""
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            query = (
                sa.select(Purchase, Lead)
                .join(Lead, Lead.id == Purchase.lead_id)
                .where(Purchase.buyer_id == buyer_id)
            )
            if after is not None:
                query = query.where(sa.tuple_(Purchase.created_at, Purchase.id) > after)
            query = query.order_by(Purchase.created_at, Purchase.id).limit(batch)
            rows = (await self.session.execute(query)).all()
            for purchase, lead in rows:
                yield purchase, lead
            if len(rows) < batch:
                return
            last = rows[-1][0]
            after = (last.created_at, last.id)

    async def purchase(self, purchase_id: uuid.UUID) -> tuple[Purchase, Lead] | None:
        row = (
            await self.session.execute(
                sa.select(Purchase, Lead)
                .join(Lead, Lead.id == Purchase.lead_id)
                .where(Purchase.id == purchase_id)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None
