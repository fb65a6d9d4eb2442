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

from aiqleads.checkout.models import Purchase, PurchaseStatus
from aiqleads.kit.bulk import insert_rows
from aiqleads.kit.dialect import (
    NO_PRICE_HIGH,
    NO_PRICE_LOW,
    ON_SALE_SQL,
    SEARCH_FILTER_COLUMNS,
    IndexedBy,
    SearchComponents,
    plan_for_values,
    search_components,
    text_terms,
)
from aiqleads.leads.models import Lead, LeadRow
from aiqleads.search.models import SavedSearchHit
from aiqleads.search.schemas import SearchFilters, SearchRequest, SortKey

METERS_PER_MILE = 1_609.344
# Index entries a search reads in its sort order before it gives up on that path (about
# 10 ms on PostgreSQL; docs/benchmarks.md).
WALK_BUDGET = 10_000
# A walk that found some matches but not a page walks this many times as far before the
# planner is asked: filters that correlate with the order (big homes, cheapest first) thin
# out the first entries only. On 1,000,000 leads, the price walks that found 1-10 matches in
# 10,000 entries filled their page within 40,000 (20-50 ms) where the planned query took
# 27-290 ms; the walks that found none needed 80,000-160,000 entries, and the planned query
# 18-44 ms, so those ask the planner at once.
WALK_STRETCH = 4
# The index each walkable sort order walks (kit.dialect.SEARCH_SORT_KEYS).
SORT_INDEXES = {
    SortKey.PRICE: "ix_leads_on_sale_price",
    SortKey.PRICE_DESC: "ix_leads_on_sale_price_desc",
    SortKey.NEWEST: "ix_leads_on_sale_newest",
    SortKey.QUALITY: "ix_leads_on_sale_quality",
    SortKey.RELEVANCE: "ix_leads_on_sale_quality",  # without words: by quality
}
# Words within a market read the leads through (market, status) (see `_plan`).
MARKET_INDEX = IndexedBy(Lead.__table__, "ix_leads_market_status")  # type: ignore[arg-type]
# The disks a distance sort tries before the whole radius, beyond the cursor's distance.
DISTANCE_RINGS_M = (2_000.0, 8_000.0, 32_000.0)
PRICE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("under_200k", 0, 20_000_000),
    ("200k_400k", 20_000_000, 40_000_000),
    ("400k_600k", 40_000_000, 60_000_000),
    ("600k_1m", 60_000_000, 100_000_000),
    ("1m_plus", 100_000_000, NO_PRICE_HIGH),
)
FACETS = ("kind", "property_type", "price_band", "market")


@dataclass(frozen=True)
class Hit:
    lead: LeadRow  # CARD_COLUMNS
    distance_m: float | None
    position: tuple[Any, uuid.UUID]  # the sort value and id: where the next page starts
    bought: bool = False  # by the viewer `page` was asked about (and not refunded)


@dataclass(frozen=True)
class _Plan:
    query: sa.Select[Any]
    rank: Any | None
    distance: Any | None


# Spelled as the search indexes spell them (kit.dialect.SEARCH_SORT_KEYS), constants inline:
# SQLite matches an index expression or a partial index's condition only to the same literal
# text, never to a bound parameter.
ON_SALE: Any = Lead.status == sa.literal_column(ON_SALE_SQL.split(" = ")[1])
# The columns of a page's leads: all but the JSON of ingestion and fraud review and the text
# index's input. Read as rows, not ORM entities: a page of 21 entities cost about as much CPU
# as the rest of the search (identity map, instance state, loader options) for objects
# nobody changes.
_NOT_ON_CARDS = frozenset(
    {"fraud_reasons", "fraud_features", "problems", "provenance", "attributes", "search_text"}
)
CARD_COLUMNS = tuple(c for c in Lead.__table__.c if c.name not in _NOT_ON_CARDS)


def _price_key(unknown: int) -> Any:
    """The price to sort by, unknown prices as `unknown` (after every known one)."""
    return sa.func.coalesce(Lead.list_price_cents, sa.literal_column(str(unknown), sa.BigInteger))


def _price_band() -> Any:
    price = Lead.list_price_cents
    return sa.case(*((price < high, name) for name, _, high in PRICE_BANDS), else_="unknown")


def _filters(f: SearchFilters, now: datetime, t: Any, c: SearchComponents) -> list[Any]:
    """The conditions of `f` that the search indexes carry (every one but the polygon, the
    source and the words), over the columns `t` (the leads table or an index walk)."""
    where: list[Any] = []
    if f.market:
        where.append(t.market == f.market)
    if f.point is not None:
        lat, lon = f.point
        # Distance sorts and pages need a point on every row.
        where.append(c.has_point())
        if f.radius_mi is not None:
            where.append(c.within(lat, lon, f.radius_mi * METERS_PER_MILE))
    if f.bbox is not None:
        west, south, east, north = f.bbox
        where.append(c.box(south, north, west, east))
    ranges: tuple[tuple[Any, Any, Any], ...] = (
        (t.list_price_cents, f.min_price_cents, f.max_price_cents),
        (t.beds, f.min_beds, None),
        (t.baths, f.min_baths, None),
        (t.living_area_sqft, f.min_living_area_sqft, f.max_living_area_sqft),
        (t.year_built, f.min_year_built, f.max_year_built),
        (t.days_on_market, None, f.max_days_on_market),
        (t.quality_score, f.min_quality, None),
        (t.fraud_score, None, f.max_fraud),
    )
    for column, low, high in ranges:
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    if f.kind:
        where.append(t.kind.in_(f.kind))
    if f.property_type:
        where.append(t.property_type.in_(f.property_type))
    if f.exclusivity is not None:
        where.append(t.exclusivity == f.exclusivity)
    if f.fresh_within_days is not None:
        where.append(t.created_at >= now - timedelta(days=f.fresh_within_days))
    return where


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self.components: SearchComponents = search_components(
            self.dialect, Lead.public_latitude, Lead.public_longitude
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
        where: list[Any] = [ON_SALE]
        if on_sale_since is not None:
            where.append(Lead.status_changed_at > on_sale_since)
        if unannounced_for is not None:
            where.append(
                ~sa.exists().where(
                    SavedSearchHit.saved_search_id == unannounced_for,
                    SavedSearchHit.lead_id == Lead.id,
                )
            )
        where.extend(_filters(f, now, Lead.__table__.c, c))
        distance = c.distance(*f.point) if f.point is not None else None
        if f.polygon is not None:
            west, south, east, north = f.polygon.bounds()
            where.append(c.box(south, north, west, east))  # index prefilter
            where.append(c.covers(orjson.dumps(f.polygon.model_dump()).decode()))
        if source_slugs is not None:
            where.append(Lead.source.in_(source_slugs))
        query = sa.select(Lead.id).where(*where)
        rank = None
        terms = text_terms(f.q) if f.q else []
        if terms:
            query, rank = c.text(query, terms)
            if f.market:
                # SQLite, given statistics, reads each word's matches by row id and checks
                # market and status on the row; through the market's index it checks them
                # in the index: 289 -> 203 ms for a common word in a market of 250,000 leads.
                query = query.select_from(MARKET_INDEX)
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
            return _price_key(NO_PRICE_HIGH), False
        if sort is SortKey.PRICE_DESC:
            return _price_key(NO_PRICE_LOW), True
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
        buyer_id: uuid.UUID | None = None,
        markets: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Up to `limit` matches after the `after` position, in the requested order (only
        leads that went on sale after `on_sale_since` and that the saved search
        `unannounced_for` has not announced, if given), each marked if `buyer_id` bought it.
        `markets` are those whose leads the search can match (`service.markets_in_reach`);
        without them, the search indexes are not walked."""
        await plan_for_values(self.session)
        plan = self._plan(request, source_slugs, now, on_sale_since, unannounced_for)
        key, descending = self._order(plan, request.sort)
        direction = sa.desc if descending else sa.asc
        after_clause = None
        if after is not None:
            value, last_id = after
            position = sa.tuple_(key, Lead.id)
            bound = sa.tuple_(sa.literal(value, key.type), sa.literal(last_id, Lead.id.type))
            after_clause = position < bound if descending else position > bound
        key_range: list[Any] = []
        if request.sort in (SortKey.PRICE, SortKey.PRICE_DESC):
            # The price range again on the sort key itself, so that a walk of the price index
            # starts and stops at the range instead of reading past every cheaper lead (the
            # filters on the column already leave unknown prices out).
            if request.min_price_cents is not None:
                key_range.append(key >= request.min_price_cents)
            if request.max_price_cents is not None:
                key_range.append(key <= request.max_price_cents)
        if markets is not None and self._walkable(
            request, source_slugs, on_sale_since, unannounced_for
        ):
            bounds = [*key_range, after_clause]
            for budget in (WALK_BUDGET, WALK_BUDGET * WALK_STRETCH):
                walked = self._walk(request, now, key, direction, bounds, limit, markets, budget)
                hits = await self._fetch(walked, direction, buyer_id)
                if len(hits) == limit:
                    return hits
                if not hits:
                    break

        def planned(plan: _Plan) -> Any:
            columns = [key.label("sort_key")]
            if plan.distance is not None:
                columns.append(plan.distance.label("distance_m"))
            query = plan.query.add_columns(*columns).where(*key_range)
            if after_clause is not None:
                query = query.where(after_clause)
            query = query.order_by(direction(key), direction(Lead.id)).limit(limit)
            return query.subquery("found")

        if request.sort is SortKey.DISTANCE and request.point is not None:
            # Nearest first, ring by ring: the matches within r of the point are nearer than
            # every match beyond it, so once a disk holds a page, that page is the answer. A
            # dense city answers from a disk of a mile or two instead of sorting the
            # 100,000 leads of a 10-mile radius. Each disk is the search's radius (not a
            # second one beside it: PostgreSQL would count both bounding boxes in its
            # estimate and, expecting one row, read the disk through the plain GiST of all
            # leads, checking the filters on every row instead of in the on-sale index).
            start = after[0] if after is not None else 0.0
            outer = request.radius_mi * METERS_PER_MILE if request.radius_mi else None
            for ring in DISTANCE_RINGS_M:
                reach = start + ring
                if outer is not None and reach >= outer:
                    break
                disk = request.model_copy(update={"radius_mi": reach / METERS_PER_MILE})
                found = planned(self._plan(disk, source_slugs, now, on_sale_since, unannounced_for))
                hits = await self._fetch(found, direction, buyer_id)
                if len(hits) == limit:
                    return hits
        return await self._fetch(planned(plan), direction, buyer_id)

    async def _fetch(self, found: Any, direction: Any, buyer_id: uuid.UUID | None) -> list[Hit]:
        """The rows of a page whose ids (and sort values) the subquery `found` gives, and
        whether `buyer_id` bought each (in the same statement)."""
        leads = Lead.__table__.c
        distance = found.c.get("distance_m")
        bought: Any = sa.false()
        if buyer_id is not None:
            bought = (
                sa.select(Purchase.lead_id)
                .where(
                    Purchase.buyer_id == buyer_id,
                    Purchase.lead_id == leads.id,
                    Purchase.status == PurchaseStatus.PAID,
                )
                .exists()
            )
        rows = (
            await self.session.execute(
                sa.select(
                    *CARD_COLUMNS,
                    found.c.sort_key.label("page_sort_key"),
                    (distance if distance is not None else sa.null()).label("page_distance_m"),
                    bought.label("page_bought"),
                )
                .select_from(Lead.__table__.join(found, leads.id == found.c.id))
                .order_by(direction(found.c.sort_key), direction(found.c.id))
            )
        ).all()
        return [
            Hit(
                lead=row,
                distance_m=row.page_distance_m,
                position=(row.page_sort_key, row.id),
                bought=bool(row.page_bought),
            )
            for row in rows
        ]

    @staticmethod
    def _walkable(
        request: SearchRequest,
        source_slugs: Sequence[str] | None,
        on_sale_since: datetime | None,
        unannounced_for: uuid.UUID | None,
    ) -> bool:
        """Whether the search indexes carry everything this search asks (its order and its
        filters): every sort but distance and relevance, no words, polygon or source."""
        return (
            request.sort in SORT_INDEXES
            and not request.q
            and request.polygon is None
            and source_slugs is None
            and on_sale_since is None
            and unannounced_for is None
        )

    def _walk(
        self,
        request: SearchRequest,
        now: datetime,
        key: Any,
        direction: Any,
        bounds: list[Any],
        limit: int,
        markets: Sequence[str],
        budget: int,
    ) -> Any:
        """A page found by walking the index of its sort order: the first `budget`
        entries after the cursor among the leads of `markets` (and those of none, unless the
        search names its market), filtered inside the index. Those hold the first matches of
        all, so the page is exact when it is full; when it is not, the matches are sparse and
        `page` asks again without the walk (the planner then starts from the place or the
        filters). The index leads with the market: each market is walked in order and the
        walks merged (PostgreSQL: a Merge Append of index-only scans).

        The planner cannot make this choice itself: its estimates of how many leads a radius
        and three filters leave were 5 to 20 times off either way on 1,000,000 leads, and a
        wrong pick cost 100-300 ms; the walk's cost is bounded and the fallback's is small
        whenever the walk came up short."""
        # SQLite's planner prefers the index on `status` and sorts what it finds (its
        # statistics average 167,000 leads per status); a walk is this index.
        index = IndexedBy(Lead.__table__, SORT_INDEXES[request.sort])  # type: ignore[arg-type]
        arms = [
            sa.select(
                Lead.id,
                key.label("sort_key"),
                *self.components.point_columns(),
                *(Lead.__table__.c[name] for name in SEARCH_FILTER_COLUMNS),
            )
            .select_from(index)
            .where(
                ON_SALE,
                Lead.market.is_(None) if market is None else Lead.market == market,
                *(b for b in bounds if b is not None),
            )
            for market in (markets if request.market else [*markets, None])
        ]

        def first(query: Any) -> Any:
            columns = query.selected_columns
            order = (direction(columns.sort_key), direction(columns.id))
            return query.order_by(*order).limit(budget)

        # One market: its range of the index, in order. Several: the first entries of their
        # ranges together. SQLite merges the ranges as it reads them in index order (the
        # ORDER BY of a UNION ALL); PostgreSQL merges no UNION ALL by a sort expression (it
        # would read and sort every range whole), so each range stops at the budget first.
        walked: Any = arms[0]
        if len(arms) > 1 and self.dialect == "postgresql":
            walked = sa.union_all(
                *(sa.select(first(arm).subquery(f"walk_{i}")) for i, arm in enumerate(arms))
            )
        elif len(arms) > 1:
            walked = sa.union_all(*arms)
        walk = first(walked).subquery("walk")
        c = walk.c
        components = search_components(
            self.dialect,
            c.get("public_latitude"),
            c.get("public_longitude"),
            c.get("geog"),
        )
        distance = (
            [components.distance(*request.point).label("distance_m")] if request.point else []
        )
        found = (
            sa.select(c.id, c.sort_key, *distance)
            .where(*_filters(request, now, c, components))
            .order_by(direction(c.sort_key), direction(c.id))
            .limit(limit)
        )
        return found.subquery("found")

    async def facets(
        self, request: SearchRequest, source_slugs: Sequence[str] | None, now: datetime
    ) -> dict[str, list[tuple[str, int]]]:
        """How many matches fall in each kind, property type, price band and market: one pass
        over the matches grouped by all four at once (a few hundred groups at most), summed
        per facet here, instead of one scan per facet."""
        await plan_for_values(self.session)
        plan = self._plan(request, source_slugs, now)
        groups = (
            Lead.kind,
            sa.func.coalesce(Lead.property_type, "unknown"),
            _price_band(),
            sa.func.coalesce(Lead.market, "unknown"),
        )
        query = plan.query.with_only_columns(*groups, sa.func.count()).group_by(*groups)
        totals: dict[str, dict[str, int]] = {name: {} for name in FACETS}
        for row in (await self.session.execute(query)).all():
            n = int(row[-1])
            for name, value in zip(FACETS, row[:-1], strict=False):
                key = str(value)
                totals[name][key] = totals[name].get(key, 0) + n
        return {
            name: sorted(values.items(), key=lambda item: (-item[1], item[0]))
            for name, values in totals.items()
        }

    async def bought(self, buyer_id: uuid.UUID, lead_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these leads the buyer has bought (and not had refunded)."""
        if not lead_ids:
            return set()
        rows = await self.session.scalars(
            sa.select(Purchase.lead_id).where(
                Purchase.buyer_id == buyer_id,
                Purchase.lead_id.in_(lead_ids),
                Purchase.status == PurchaseStatus.PAID,
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
