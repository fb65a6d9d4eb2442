"""All SQL of leads, their blocking keys and possible duplicates."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.kit import bulk
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead, LeadMatchKey, MatchStatus, PossibleDuplicate

_LEADS: sa.Table = Lead.__table__  # type: ignore[assignment]
_KEYS: sa.Table = LeadMatchKey.__table__  # type: ignore[assignment]
_POSSIBLE: sa.Table = PossibleDuplicate.__table__  # type: ignore[assignment]

# What entity resolution compares; loading only these keeps a match lookup cheap.
COMPARE_COLUMNS = (
    "id",
    "status",
    "merged_into_id",
    "kind",
    "first_name",
    "last_name",
    "phone",
    "email",
    "street_number",
    "street_name",
    "unit_number",
    "postal_code",
    "parcel_number",
    "state",
)


class LeadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def get(self, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        stmt = sa.select(Lead).where(Lead.id == lead_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def leads_by_keys(self, keys: Sequence[str]) -> dict[str, set[uuid.UUID]]:
        """Which leads carry each of `keys`."""
        found: dict[str, set[uuid.UUID]] = defaultdict(set)
        for chunk in bulk.chunks(sorted(set(keys))):
            rows = await self.session.execute(
                sa.select(LeadMatchKey.key, LeadMatchKey.lead_id).where(LeadMatchKey.key.in_(chunk))
            )
            for key, lead_id in rows:
                found[key].add(lead_id)
        return found

    async def compare_fields(
        self, lead_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """The fields entity resolution compares, for each lead."""
        ids = list(set(lead_ids))
        columns = [getattr(Lead, c) for c in COMPARE_COLUMNS]
        result: dict[uuid.UUID, dict[str, Any]] = {}
        for chunk in bulk.chunks(ids):
            rows = await self.session.execute(sa.select(*columns).where(Lead.id.in_(chunk)))
            for row in rows.mappings():
                result[row["id"]] = dict(row)
        return result

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        await bulk.insert_rows(self.session, _LEADS, rows)

    async def update_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Update leads by primary key (each row has "id"): one executemany per batch."""
        await bulk.update_rows(self.session, _LEADS, rows)

    async def set_status(
        self, lead_ids: Sequence[uuid.UUID], status: LeadStatus, at: datetime
    ) -> None:
        """Move leads to `status` (the caller checked each transition)."""
        for chunk in bulk.chunks(sorted(lead_ids)):
            await self.session.execute(
                sa.update(Lead)
                .where(Lead.id.in_(chunk))
                .values(status=status, status_changed_at=at, updated_at=at)
            )

    async def add_keys(self, pairs: Iterable[tuple[str, uuid.UUID]]) -> None:
        rows = [{"key": k, "lead_id": lead_id} for k, lead_id in set(pairs)]
        await bulk.insert_rows(self.session, _KEYS, rows, ignore_conflicts=True)

    async def replace_keys(self, lead_id: uuid.UUID, keys: Iterable[str]) -> None:
        await self.delete_keys(lead_id)
        await self.add_keys((k, lead_id) for k in keys)

    async def delete_keys(self, lead_id: uuid.UUID) -> None:
        await self.session.execute(sa.delete(LeadMatchKey).where(LeadMatchKey.lead_id == lead_id))

    async def recent_ip_counts(self, ips: Iterable[str], since: datetime) -> dict[str, int]:
        """Leads created per consent IP since `since` (a burst from one IP is a fraud signal)."""
        wanted = sorted(set(ips))
        if not wanted:
            return {}
        rows = await self.session.execute(
            sa.select(Lead.consent_ip, sa.func.count())
            .where(Lead.consent_ip.in_(wanted), Lead.created_at >= since)
            .group_by(Lead.consent_ip)
        )
        return {ip: int(count) for ip, count in rows.all() if ip}

    async def add_possible_duplicates(self, rows: Sequence[dict[str, Any]]) -> None:
        await bulk.insert_rows(self.session, _POSSIBLE, rows, ignore_conflicts=True)

    async def possible_duplicates(
        self, lead_id: uuid.UUID | None = None, status: MatchStatus | None = MatchStatus.OPEN
    ) -> list[PossibleDuplicate]:
        stmt = sa.select(PossibleDuplicate).order_by(PossibleDuplicate.created_at)
        if lead_id is not None:
            stmt = stmt.where(
                sa.or_(
                    PossibleDuplicate.lead_id == lead_id, PossibleDuplicate.other_lead_id == lead_id
                )
            )
        if status is not None:
            stmt = stmt.where(PossibleDuplicate.status == status)
        return list((await self.session.execute(stmt)).scalars())

    async def close_possible_duplicates(
        self, a: uuid.UUID, b: uuid.UUID, status: MatchStatus, by: uuid.UUID | None, at: datetime
    ) -> int:
        """Close the open pairs between `a` and `b`; how many there were."""
        result = await self.session.execute(
            sa.update(PossibleDuplicate)
            .where(
                sa.or_(
                    sa.and_(PossibleDuplicate.lead_id == a, PossibleDuplicate.other_lead_id == b),
                    sa.and_(PossibleDuplicate.lead_id == b, PossibleDuplicate.other_lead_id == a),
                ),
                PossibleDuplicate.status == MatchStatus.OPEN,
            )
            .values(status=status, decided_by=by, decided_at=at)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def review_queue(
        self, *, market: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Lead]:
        """Quarantined leads, oldest first, for operators to decide."""
        stmt = sa.select(Lead).where(Lead.status == LeadStatus.QUARANTINED)
        if market:
            stmt = stmt.where(Lead.market == market)
        if after is not None:
            stmt = stmt.where(sa.tuple_(Lead.created_at, Lead.id) > sa.tuple_(*after))
        stmt = stmt.order_by(Lead.created_at, Lead.id).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def count(self) -> int:
        return int(
            (await self.session.execute(sa.select(sa.func.count()).select_from(Lead))).scalar_one()
        )
