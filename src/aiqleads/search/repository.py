"""The SQL of marketplace search: filters, geography, text, keyset pages and facet counts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
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
    param,
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
# What a search can ask that the sort indexes do not carry (besides words).
_NOT_IN_SORT_INDEXES = frozenset({"polygon", "sources", "on_sale_since", "unannounced_for"})
# A place, which the spatial index serves.
_PLACE = frozenset({"point_lat", "bbox_south"})
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


LEADS: sa.Table = Lead.__table__  # type: ignore[assignment]
L = LEADS.c
# Spelled as the search indexes spell them (kit.dialect.SEARCH_SORT_KEYS), constants inline:
# SQLite matches an index expression or a partial index's condition only to the same literal
# text, never to a bound parameter.
ON_SALE: Any = L.status == sa.literal_column(ON_SALE_SQL.split(" = ")[1])
# The columns of a page's leads: all but the JSON of ingestion and fraud review and the text
# index's input. Read as rows, not ORM entities: a page of 21 entities cost about as much CPU
# as the rest of the search (identity map, instance state, loader options) for objects
# nobody changes.
_NOT_ON_CARDS = frozenset(
    {"fraud_reasons", "fraud_features", "problems", "provenance", "attributes", "search_text"}
)
CARD_COLUMNS = tuple(c for c in L if c.name not in _NOT_ON_CARDS)
# Range filters: (parameter, column, whether it is the low end).
_RANGES: tuple[tuple[str, str, bool], ...] = (
    ("min_price_cents", "list_price_cents", True),
    ("max_price_cents", "list_price_cents", False),
    ("min_beds", "beds", True),
    ("min_baths", "baths", True),
    ("min_living_area_sqft", "living_area_sqft", True),
    ("max_living_area_sqft", "living_area_sqft", False),
    ("min_year_built", "year_built", True),
    ("max_year_built", "year_built", False),
    ("max_days_on_market", "days_on_market", False),
    ("min_quality", "quality_score", True),
    ("max_fraud", "fraud_score", False),
)
_LISTS = ("kind", "property_type")
# Statements kept per shape (`_Shape`); a shape is a combination of filters, sort and paging.
STATEMENTS_KEPT = 256


def _price_key(unknown: int) -> Any:
    """The price to sort by, unknown prices as `unknown` (after every known one)."""
    return sa.func.coalesce(L.list_price_cents, sa.literal_column(str(unknown), sa.BigInteger))


def _price_band() -> Any:
    price = L.list_price_cents
    return sa.case(*((price < high, name) for name, _, high in PRICE_BANDS), else_="unknown")


def _components(dialect: str) -> SearchComponents:
    return search_components(dialect, L.public_latitude, L.public_longitude)


def _filter_values(f: SearchFilters, now: datetime, c: SearchComponents) -> dict[str, Any]:
    """The values of the conditions of `f` that the search indexes carry (every one but the
    polygon, the source and the words), by the parameter names `_filters` gives them."""
    values: dict[str, Any] = {}
    if f.market:
        values["market"] = f.market
    if f.point is not None:
        values |= c.point_values(*f.point)
        if f.radius_mi is not None:
            values |= c.within_values(*f.point, f.radius_mi * METERS_PER_MILE)
    if f.bbox is not None:
        west, south, east, north = f.bbox
        values |= c.box_values("bbox", south, north, west, east)
    for name, _, _ in _RANGES:
        if (value := getattr(f, name)) is not None:
            values[name] = value
    for name in _LISTS:
        if items := getattr(f, name):
            values[name] = list(items)
    if f.exclusivity is not None:
        values["exclusivity"] = f.exclusivity
    if f.fresh_within_days is not None:
        values["fresh_since"] = now - timedelta(days=f.fresh_within_days)
    return values


def _filters(names: frozenset[str], t: Any, c: SearchComponents) -> list[Any]:
    """The conditions `_filter_values` gave values for, over the columns `t` (the leads table
    or an index walk)."""
    where: list[Any] = []
    if "market" in names:
        where.append(t.market == param("market", t.market.type))
    if "point_lat" in names:
        where.append(c.has_point())  # distance sorts and pages need a point on every row
    if "bbox_south" in names:
        where.append(c.box("bbox"))
    for name, column, low in _RANGES:
        if name in names:
            value = param(name, t[column].type)
            where.append(t[column] >= value if low else t[column] <= value)
    for name in _LISTS:
        if name in names:
            where.append(t[name].in_(param(name, t[name].type, expanding=True)))
    if "exclusivity" in names:
        where.append(t.exclusivity == param("exclusivity", t.exclusivity.type))
    if "fresh_since" in names:
        where.append(t.created_at >= param("fresh_since", t.created_at.type))
    if "within_m" in names:
        # Last: SQLite checks the conditions in the order written, and the distance on the
        # sphere costs more than all the others (an 8 km disk of 57,000 leads, 8,000 of them
        # passing two filters first: 33 -> 19 ms). PostgreSQL orders them by cost itself.
        where.append(c.within())
    return where


@dataclass(frozen=True)
class _Shape:
    """What the SQL of a search depends on; its values go beside it as parameters, so each
    shape's statements are built once (`STATEMENTS_KEPT`). Building them was about a third of
    a search's CPU: SQLAlchemy makes each subquery's columns and the cache key from the whole
    tree anew, for a statement it has compiled before."""

    names: frozenset[str]  # parameters with a value (filters, place, words, cursor, viewer)
    sort: SortKey
    terms: int = 0  # words to find
    nothing: bool = False  # words asked for, but only stop words: nothing to find


def _in_sort_indexes(shape: _Shape) -> bool:
    """Whether the sort indexes carry every condition of the search: all but words, a
    polygon, sources and a saved search's own conditions."""
    return not (shape.terms or shape.nothing or shape.names & _NOT_IN_SORT_INDEXES)


@dataclass(frozen=True)
class _Search:
    shape: _Shape
    values: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    query: sa.Select[Any]
    rank: Any | None
    distance: Any | None


def _plan(dialect: str, shape: _Shape) -> _Plan:
    c = _components(dialect)
    names = shape.names
    where: list[Any] = [ON_SALE]
    if "on_sale_since" in names:
        where.append(L.status_changed_at > param("on_sale_since", L.status_changed_at.type))
    if "unannounced_for" in names:
        hits = SavedSearchHit.__table__.c
        where.append(
            ~sa.exists().where(
                hits.saved_search_id == param("unannounced_for", hits.saved_search_id.type),
                hits.lead_id == L.id,
            )
        )
    where.extend(_filters(names, L, c))
    distance = c.distance() if "point_lat" in names else None
    if "polygon" in names:
        where.append(c.box("polygon"))  # index prefilter
        where.append(c.covers())
    if "sources" in names:
        where.append(L.source.in_(param("sources", L.source.type, expanding=True)))
    query = sa.select(L.id).where(*where)
    rank = None
    if shape.terms:
        query, rank = c.text(query, shape.terms)
        if "market" in names:
            # SQLite, given statistics, reads each word's matches by row id and checks
            # market and status on the row; through the market's index it checks them
            # in the index: 289 -> 203 ms for a common word in a market of 250,000 leads.
            query = query.select_from(MARKET_INDEX)
    elif shape.nothing:  # only stop words or punctuation: nothing to find
        query = query.where(sa.false())
    return _Plan(query, rank, distance)


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
        return L.created_at, True
    return L.quality_score, True  # quality, and relevance without words


def _bounds(shape: _Shape, key: Any, descending: bool) -> tuple[list[Any], Any]:
    """Where the page's sort key may lie: the price range again on the key itself for a price
    sort (so that a walk of the price index starts and stops at the range instead of reading
    past every cheaper lead; the filters on the column already leave unknown prices out), and
    beyond the cursor's position, if any."""
    key_range: list[Any] = []
    if shape.sort in (SortKey.PRICE, SortKey.PRICE_DESC):
        if "min_price_cents" in shape.names:
            key_range.append(key >= param("min_price_cents", key.type))
        if "max_price_cents" in shape.names:
            key_range.append(key <= param("max_price_cents", key.type))
    after = None
    if "after_id" in shape.names:
        position = sa.tuple_(key, L.id)
        bound = sa.tuple_(param("after_value", key.type), param("after_id", L.id.type))
        after = position < bound if descending else position > bound
    return key_range, after


def _fetch(dialect: str, shape: _Shape, found: Any, direction: Any) -> Any:
    """The rows of a page whose ids (and sort values) the subquery `found` gives, and whether
    the viewer (`buyer_id`) bought each (in the same statement)."""
    distance = found.c.get("distance_m")
    bought: Any = sa.false()
    if "buyer_id" in shape.names:
        purchases = Purchase.__table__.c
        bought = (
            sa.select(purchases.lead_id)
            .where(
                purchases.buyer_id == param("buyer_id", purchases.buyer_id.type),
                purchases.lead_id == L.id,
                purchases.status == PurchaseStatus.PAID,
            )
            .exists()
        )
    return (
        sa.select(
            *CARD_COLUMNS,
            found.c.sort_key.label("page_sort_key"),
            (distance if distance is not None else sa.null()).label("page_distance_m"),
            bought.label("page_bought"),
        )
        .select_from(LEADS.join(found, L.id == found.c.id))
        .order_by(direction(found.c.sort_key), direction(found.c.id))
    )


@lru_cache(maxsize=STATEMENTS_KEPT)
def _planned(dialect: str, shape: _Shape) -> Any:
    """A page of the search as the planner finds it (`limit` rows)."""
    plan = _plan(dialect, shape)
    key, descending = _order(plan, shape.sort)
    direction = sa.desc if descending else sa.asc
    key_range, after = _bounds(shape, key, descending)
    columns = [key.label("sort_key")]
    if plan.distance is not None:
        columns.append(plan.distance.label("distance_m"))
    query = plan.query.add_columns(*columns).where(*key_range)
    if after is not None:
        query = query.where(after)
    query = query.order_by(direction(key), direction(L.id)).limit(param("limit", sa.Integer))
    return _fetch(dialect, shape, query.subquery("found"), direction)


@lru_cache(maxsize=STATEMENTS_KEPT)
def _walked(dialect: str, shape: _Shape, markets: int, unassigned: bool) -> Any:
    """A page found by walking the index of its sort order: the first `budget` entries after
    the cursor among the leads of the markets `market_0` ... (and, if `unassigned`, those of
    none), filtered inside the index. Those hold the first matches of all, so the page is
    exact when it is full; when it is not, the matches are sparse and `page` asks again
    without the walk (the planner then starts from the place or the filters). The index leads
    with the market: each market is walked in order and the walks merged (PostgreSQL: a
    Merge Append of index-only scans).

    The planner cannot make this choice itself: its estimates of how many leads a radius
    and three filters leave were 5 to 20 times off either way on 1,000,000 leads, and a
    wrong pick cost 100-300 ms; the walk's cost is bounded and the fallback's is small
    whenever the walk came up short."""
    plan = _plan(dialect, shape)
    key, descending = _order(plan, shape.sort)
    direction = sa.desc if descending else sa.asc
    key_range, after = _bounds(shape, key, descending)
    bounds = [*key_range, *([after] if after is not None else [])]
    # SQLite's planner prefers the index on `status` and sorts what it finds (its
    # statistics average 167,000 leads per status); a walk is this index.
    index = IndexedBy(LEADS, SORT_INDEXES[shape.sort])
    budget = param("budget", sa.Integer)
    places = [L.market == param(f"market_{i}", L.market.type) for i in range(markets)]
    arms = [
        sa.select(
            L.id,
            key.label("sort_key"),
            *_components(dialect).point_columns(),
            *(L[name] for name in SEARCH_FILTER_COLUMNS),
        )
        .select_from(index)
        .where(ON_SALE, place, *bounds)
        for place in [*places, *([L.market.is_(None)] if unassigned else [])]
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
    if len(arms) > 1 and dialect == "postgresql":
        walked = sa.union_all(
            *(sa.select(first(arm).subquery(f"walk_{i}")) for i, arm in enumerate(arms))
        )
    elif len(arms) > 1:
        walked = sa.union_all(*arms)
    walk = first(walked).subquery("walk")
    c = walk.c
    components = search_components(
        dialect, c.get("public_latitude"), c.get("public_longitude"), c.get("geog")
    )
    distance = [components.distance().label("distance_m")] if "point_lat" in shape.names else []
    found = sa.select(c.id, c.sort_key, *distance).where(*_filters(shape.names, c, components))
    if dialect != "sqlite":
        found = found.order_by(direction(c.sort_key), direction(c.id))
    # SQLite sorts what a subquery gives (its co-routine) again for an ORDER BY on it, so it
    # read the whole budget before it took the first matches: 10,000 entries for every walk.
    # Without it, the matches come in the walk's order (the subquery's ORDER BY) and the
    # LIMIT stops the walk at the page's last match. PostgreSQL knows the subquery's order.
    found = found.limit(param("limit", sa.Integer))
    return _fetch(dialect, shape, found.subquery("found"), direction)


@lru_cache(maxsize=STATEMENTS_KEPT)
def _counted(dialect: str, shape: _Shape) -> Any:
    """The search's matches counted by kind, property type, price band and market."""
    groups = (
        L.kind,
        sa.func.coalesce(L.property_type, "unknown"),
        _price_band(),
        sa.func.coalesce(L.market, "unknown"),
    )
    query = _plan(dialect, shape).query
    if (
        dialect == "sqlite"
        and "market" in shape.names
        and _in_sort_indexes(shape)
        and not shape.names & _PLACE
    ):
        # A market's matches, counted from a sort index led by the market, which carries
        # every filtered and grouped column: SQLite went through the index on (market,
        # status) and read each lead's row (315,000 in Dallas-Fort Worth: 560 -> 260 ms).
        query = query.select_from(IndexedBy(LEADS, SORT_INDEXES[SortKey.QUALITY]))
    return query.with_only_columns(*groups, sa.func.count()).group_by(*groups)


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self.components: SearchComponents = _components(self.dialect)

    def _search(
        self,
        request: SearchRequest,
        source_slugs: Sequence[str] | None,
        now: datetime,
        on_sale_since: datetime | None = None,
        unannounced_for: uuid.UUID | None = None,
        after: tuple[Any, uuid.UUID] | None = None,
        buyer_id: uuid.UUID | None = None,
    ) -> _Search:
        """The search's values by parameter name, and the shape of SQL they fill in."""
        c = self.components
        values = _filter_values(request, now, c)
        if on_sale_since is not None:
            values["on_sale_since"] = on_sale_since
        if unannounced_for is not None:
            values["unannounced_for"] = unannounced_for
        if request.polygon is not None:
            west, south, east, north = request.polygon.bounds()
            values |= c.box_values("polygon", south, north, west, east)
            values |= c.covers_values(orjson.dumps(request.polygon.model_dump()).decode())
        if source_slugs is not None:
            values["sources"] = list(source_slugs)
        terms = text_terms(request.q) if request.q else []
        values |= c.text_values(terms)
        if after is not None:
            values["after_value"], values["after_id"] = after
        if buyer_id is not None:
            values["buyer_id"] = buyer_id
        shape = _Shape(
            frozenset(values), request.sort, len(terms), nothing=bool(request.q) and not terms
        )
        return _Search(shape, values)

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
        search = self._search(
            request, source_slugs, now, on_sale_since, unannounced_for, after, buyer_id
        )
        shape, values = search.shape, search.values | {"limit": limit}
        if markets is not None and shape.sort in SORT_INDEXES and _in_sort_indexes(shape):
            unassigned = not request.market
            walk = _walked(self.dialect, shape, len(markets), unassigned)
            for i, market in enumerate(markets):
                values[f"market_{i}"] = market
            for budget in (WALK_BUDGET, WALK_BUDGET * WALK_STRETCH):
                hits = await self._hits(walk, values | {"budget": budget})
                if len(hits) == limit:
                    return hits
                if not hits:
                    break
        planned = _planned(self.dialect, shape)
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
                within = self.components.within_values(*request.point, reach)
                disk = replace(shape, names=shape.names | frozenset(within))
                hits = await self._hits(_planned(self.dialect, disk), values | within)
                if len(hits) == limit:
                    return hits
        return await self._hits(planned, values)

    async def _hits(self, statement: Any, values: dict[str, Any]) -> list[Hit]:
        rows = (await self.session.execute(statement, values)).all()
        return [
            Hit(
                lead=row,
                distance_m=row.page_distance_m,
                position=(row.page_sort_key, row.id),
                bought=bool(row.page_bought),
            )
            for row in rows
        ]

    async def facets(
        self, request: SearchRequest, source_slugs: Sequence[str] | None, now: datetime
    ) -> dict[str, list[tuple[str, int]]]:
        """How many matches fall in each kind, property type, price band and market: one pass
        over the matches grouped by all four at once (a few hundred groups at most), summed
        per facet here, instead of one scan per facet."""
        await plan_for_values(self.session)
        search = self._search(request, source_slugs, now)
        statement = _counted(self.dialect, search.shape)
        totals: dict[str, dict[str, int]] = {name: {} for name in FACETS}
        for row in (await self.session.execute(statement, search.values)).all():
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
