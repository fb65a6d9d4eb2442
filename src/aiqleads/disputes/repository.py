"""All SQL of disputes: the purchase and lead behind a dispute, locked; the buyer's recent
purchases and refunds; earlier purchases that may be the same person; and each source's
record after the sale."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.checkout.models import Purchase, PurchaseStatus
from aiqleads.disputes.models import Dispute, DisputeStatus
from aiqleads.kit.dialect import lock_key
from aiqleads.leads.models import Lead, LeadMatchKey
from aiqleads.quality.dedup import key_kind
from aiqleads.quality.models import LeadReview

# Blocking keys worth a comparison (phonetic names + ZIP are too loose to even suggest that
# two purchases are the same lead).
IDENTIFYING_KEYS = ("p:", "e:", "a:", "parcel:")


@dataclass(frozen=True)
class Candidate:
    """An earlier purchase's lead and the kinds of identifying key it shares with the
    disputed one (quality.dedup.key_kind: "p", "e", "a", "parcel")."""

    lead: Lead
    shared: frozenset[str]


@dataclass(frozen=True)
class SourceRecord:
    source: str
    sold: int
    disputed: int
    refunded: int


class DisputeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_buyer(self, buyer_id: uuid.UUID) -> None:
        """One dispute of a buyer at a time (the allowance counts what came before).
        An advisory lock, not the user's row: payments and grants lock the buyer's credits
        and then insert rows that key-share-lock the user, which would make a cycle."""
        await lock_key(self.session, f"disputes|{buyer_id}")

    async def purchase(self, purchase_id: uuid.UUID) -> Purchase | None:
        return await self.session.scalar(
            sa.select(Purchase)
            .where(Purchase.id == purchase_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def lead(self, lead_id: uuid.UUID) -> Lead | None:
        return await self.session.scalar(
            sa.select(Lead)
            .where(Lead.id == lead_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def dispute(self, dispute_id: uuid.UUID, *, lock: bool = False) -> Dispute | None:
        query = sa.select(Dispute).where(Dispute.id == dispute_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def of_purchase(self, purchase_id: uuid.UUID) -> Dispute | None:
        return await self.session.scalar(
            sa.select(Dispute).where(Dispute.purchase_id == purchase_id)
        )

    async def purchases_since(self, buyer_id: uuid.UUID, since: datetime) -> int:
        return int(
            await self.session.scalar(
                sa.select(sa.func.count())
                .select_from(Purchase)
                .where(Purchase.buyer_id == buyer_id, Purchase.created_at >= since)
            )
            or 0
        )

    async def auto_refunds_since(self, buyer_id: uuid.UUID, since: datetime) -> int:
        return int(
            await self.session.scalar(
                sa.select(sa.func.count())
                .select_from(Dispute)
                .where(
                    Dispute.buyer_id == buyer_id,
                    Dispute.auto_decided,
                    Dispute.status == DisputeStatus.APPROVED,
                    Dispute.decided_at >= since,
                )
            )
            or 0
        )

    async def earlier_candidates(self, purchase: Purchase, lead: Lead) -> list[Candidate]:
        """Leads the buyer bought (and kept) before this purchase that may be the same person
        or property: a shared identifying key (only a blocking key: disputes.evidence decides),
        or the lead this one was merged into."""
        keys = list(
            await self.session.scalars(
                sa.select(LeadMatchKey.key).where(
                    LeadMatchKey.lead_id == lead.id,
                    sa.or_(*(LeadMatchKey.key.startswith(p) for p in IDENTIFYING_KEYS)),
                )
            )
        )
        sharing = sa.select(LeadMatchKey.lead_id).where(LeadMatchKey.key.in_(keys))
        same = sa.or_(Lead.id.in_(sharing), Lead.id == lead.merged_into_id)
        leads = list(
            await self.session.scalars(
                sa.select(Lead)
                .join(Purchase, Purchase.lead_id == Lead.id)
                .where(
                    Purchase.buyer_id == purchase.buyer_id,
                    Purchase.status == PurchaseStatus.PAID,
                    Purchase.created_at <= purchase.created_at,
                    Purchase.id != purchase.id,
                    Lead.id != lead.id,
                    same,
                )
                .order_by(Purchase.created_at)
            )
        )
        shared: dict[uuid.UUID, set[str]] = defaultdict(set)
        if leads and keys:
            rows = await self.session.execute(
                sa.select(LeadMatchKey.lead_id, LeadMatchKey.key).where(
                    LeadMatchKey.lead_id.in_([other.id for other in leads]),
                    LeadMatchKey.key.in_(keys),
                )
            )
            for lead_id, key in rows.all():
                shared[lead_id].add(key_kind(key))
        return [Candidate(other, frozenset(shared[other.id])) for other in leads]

    async def page(
        self,
        *,
        buyer_id: uuid.UUID | None,
        status: DisputeStatus | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        oldest_first: bool = False,
    ) -> list[Dispute]:
        query = sa.select(Dispute)
        if buyer_id is not None:
            query = query.where(Dispute.buyer_id == buyer_id)
        if status is not None:
            query = query.where(Dispute.status == status)
        position = sa.tuple_(Dispute.created_at, Dispute.id)
        if after is not None:
            query = query.where(position > after if oldest_first else position < after)
        order = (
            (Dispute.created_at, Dispute.id)
            if oldest_first
            else (Dispute.created_at.desc(), Dispute.id.desc())
        )
        return list(await self.session.scalars(query.order_by(*order).limit(limit)))

    async def by_source(self) -> list[SourceRecord]:
        """Each source's leads after the sale: sales, disputes, refunds (derived, so always
        current)."""
        disputed = (
            sa.select(sa.func.count())
            .select_from(Dispute)
            .where(Dispute.purchase_id == Purchase.id)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            sa.select(
                Lead.source,
                sa.func.count(Purchase.id),
                sa.func.sum(disputed),
                sa.func.sum(sa.case((Purchase.status == PurchaseStatus.REFUNDED, 1), else_=0)),
            )
            .join(Lead, Lead.id == Purchase.lead_id)
            .group_by(Lead.source)
            .order_by(Lead.source)
        )
        return [
            SourceRecord(source, int(sold), int(d or 0), int(r or 0))
            for source, sold, d, r in rows.all()
        ]

    async def approved_in_review(self, lead_id: uuid.UUID) -> bool:
        """Whether an operator's last review of the lead approved it."""
        decision = await self.session.scalar(
            sa.select(LeadReview.decision)
            .where(LeadReview.lead_id == lead_id)
            .order_by(LeadReview.created_at.desc())
            .limit(1)
        )
        return decision == "approve"
