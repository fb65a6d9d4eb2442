"""The SQL of marketplace search: filters, geography, text, keyset pages and facet counts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.checkout.models import Purchase
from aiqleads.kit.bulk import insert_rows
from aiqleads.kit.dialect import SearchComponents, search_components, text_terms
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead
from aiqleads.search.models import SavedSearchHit
from aiqleads.search.schemas import SearchFilters, SearchRequest, SortKey

METERS_PER_MILE = 1_609.344
# Unknown prices sort after every known one, whichever way the list runs.
_NO_PRICE_LOW, _NO_PRICE_HIGH = -1, 2**62
PRICE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("under_200k", 0, 20_000_000),
    ("200k_400k", 20_000_000, 40_000_000),
    ("400k_600k", 40_000_000, 60_000_000),
    ("600k_1m", 60_000_000, 100_000_000),
    ("1m_plus", 100_000_000, _NO_PRICE_HIGH),
)
FACETS = ("kind", "property_type", "price_band", "market")


@dataclass(frozen=True)
class Hit:
    lead: Lead
    distance_m: float | None
    position: tuple[Any, uuid.UUID]  # the sort value and id: where the next page starts


@dataclass(frozen=True)
class _Plan:
    query: sa.Select[Any]
    rank: Any | None
    distance: Any | None


def _price_band() -> Any:
    price = Lead.list_price_cents
    return sa.case(*((price < high, name) for name, _, high in PRICE_BANDS), else_="unknown").label(
        "value"
    )


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        bind = session.get_bind()
        self.components: SearchComponents = search_components(
            bind.dialect.name, Lead.public_latitude, Lead.public_longitude
        )

    def _plan(
        self,
        f: SearchFilters,
        source_slugs: Sequence[str] | None,
        now: datetime,
        on_sale_since: datetime | None = None,
        unannounced_for: uuid.UUID | None = None,
    ) -> _Plan:
        c = self.components
        where: list[Any] = [Lead.status == LeadStatus.AVAILABLE]
        if on_sale_since is not None:
            where.append(Lead.status_changed_at > on_sale_since)
        if unannounced_for is not None:
            where.append(
                ~sa.exists().where(
                    SavedSearchHit.saved_search_id == unannounced_for,
                    SavedSearchHit.lead_id == Lead.id,
                )
            )
        if f.market:
            where.append(Lead.market == f.market)
        distance = None
        if f.point is not None:
            lat, lon = f.point
            distance = c.distance(lat, lon)
            # Distance sorts and pages need a point on every row.
            where.append(Lead.public_latitude.is_not(None))
            if f.radius_mi is not None:
                where.append(c.within(lat, lon, f.radius_mi * METERS_PER_MILE))
        if f.bbox is not None:
            west, south, east, north = f.bbox
            where.append(c.box(south, north, west, east))
        if f.polygon is not None:
            west, south, east, north = f.polygon.bounds()
            where.append(c.box(south, north, west, east))  # index prefilter
            where.append(c.covers(orjson.dumps(f.polygon.model_dump()).decode()))
        ranges: tuple[tuple[Any, Any, Any], ...] = (
            (Lead.list_price_cents, f.min_price_cents, f.max_price_cents),
            (Lead.beds, f.min_beds, None),
            (Lead.baths, f.min_baths, None),
            (Lead.living_area_sqft, f.min_living_area_sqft, f.max_living_area_sqft),
            (Lead.year_built, f.min_year_built, f.max_year_built),
            (Lead.days_on_market, None, f.max_days_on_market),
            (Lead.quality_score, f.min_quality, None),
            (Lead.fraud_score, None, f.max_fraud),
        )
        for column, low, high in ranges:
            if low is not None:
                where.append(column >= low)
            if high is not None:
                where.append(column <= high)
        if f.kind:
            where.append(Lead.kind.in_(f.kind))
        if f.property_type:
            where.append(Lead.property_type.in_(f.property_type))
        if f.exclusivity is not None:
            where.append(Lead.exclusivity == f.exclusivity)
        if f.fresh_within_days is not None:
            where.append(Lead.created_at >= now - timedelta(days=f.fresh_within_days))
        if source_slugs is not None:
            where.append(Lead.source.in_(source_slugs))
        query = sa.select(Lead).where(*where)
        rank = None
        terms = text_terms(f.q) if f.q else []
        if terms:
            query, rank = c.text(query, terms)
        elif f.q:  # only stop words or punctuation: nothing to find
            query = query.where(sa.false())
        return _Plan(query, rank, distance)

    @staticmethod
    def _order(plan: _Plan, sort: SortKey) -> tuple[Any, bool]:
        """The sort expression and whether it runs high to low."""
        if sort is SortKey.RELEVANCE and plan.rank is not None:
            return plan.rank, True
        if sort is SortKey.DISTANCE and plan.distance is not None:
            return plan.distance, False
        if sort is SortKey.PRICE:
            return sa.func.coalesce(Lead.list_price_cents, _NO_PRICE_HIGH), False
        if sort is SortKey.PRICE_DESC:
            return sa.func.coalesce(Lead.list_price_cents, _NO_PRICE_LOW), True
        if sort is SortKey.NEWEST:
            return Lead.created_at, True
        return Lead.quality_score, True  # quality, and relevance without words

    async def page(
        self,
        request: SearchRequest,
        source_slugs: Sequence[str] | None,
        now: datetime,
        after: tuple[Any, uuid.UUID] | None,
        limit: int,
        on_sale_since: datetime | None = None,
        unannounced_for: uuid.UUID | None = None,
    ) -> list[Hit]:
        """Up to `limit` matches after the `after` position, in the requested order (only
        leads that went on sale after `on_sale_since` and that the saved search
        `unannounced_for` has not announced, if given)."""
        plan = self._plan(request, source_slugs, now, on_sale_since, unannounced_for)
        key, descending = self._order(plan, request.sort)
        columns = [key.label("sort_key")]
        if plan.distance is not None:
            columns.append(plan.distance.label("distance_m"))
        query = plan.query.add_columns(*columns)
        if after is not None:
            value, last_id = after
            position = sa.tuple_(key, Lead.id)
            bound = sa.tuple_(sa.literal(value, key.type), sa.literal(last_id, Lead.id.type))
            query = query.where(position < bound if descending else position > bound)
        direction = sa.desc if descending else sa.asc
        query = query.order_by(direction(key), direction(Lead.id)).limit(limit)
        rows = (await self.session.execute(query)).all()
        return [
            Hit(
                lead=row[0],
                distance_m=row[2] if plan.distance is not None else None,
                position=(row[1], row[0].id),
            )
            for row in rows
        ]

    async def facets(
        self, request: SearchRequest, source_slugs: Sequence[str] | None, now: datetime
    ) -> dict[str, list[tuple[str, int]]]:
        """How many matches fall in each kind, property type, price band and market."""
        plan = self._plan(request, source_slugs, now)
        groups = {
            "kind": Lead.kind.label("value"),
            "property_type": sa.func.coalesce(Lead.property_type, "unknown").label("value"),
            "price_band": _price_band(),
            "market": sa.func.coalesce(Lead.market, "unknown").label("value"),
        }
        counts: dict[str, list[tuple[str, int]]] = {}
        for name in FACETS:
            value = groups[name]
            query = (
                plan.query.with_only_columns(value, sa.func.count().label("n"))
                .group_by(value)
                .order_by(sa.desc("n"), value)
            )
            counts[name] = [(str(v), int(n)) for v, n in (await self.session.execute(query)).all()]
        return counts

    async def bought(self, buyer_id: uuid.UUID, lead_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these leads the buyer has bought."""
        if not lead_ids:
            return set()
        rows = await self.session.scalars(
            sa.select(Purchase.lead_id).where(
                Purchase.buyer_id == buyer_id, Purchase.lead_id.in_(lead_ids)
            )
        )
        return set(rows)

    async def announced(
        self, saved_search_id: uuid.UUID, lead_ids: Sequence[uuid.UUID], at: datetime
    ) -> None:
        """Remember that the saved search announced these leads."""
        await insert_rows(
            self.session,
            SavedSearchHit.__table__,  # type: ignore[arg-type]
            [
                {"saved_search_id": saved_search_id, "lead_id": i, "announced_at": at}
                for i in lead_ids
            ],
            ignore_conflicts=True,
        )

    async def get(self, lead_id: uuid.UUID) -> Lead | None:
        return await self.session.get(Lead, lead_id)
