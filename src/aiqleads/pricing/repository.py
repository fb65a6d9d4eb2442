"""The SQL of pricing: configurations, segment statistics, snapshots and stored prices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.demand.models import DemandEvent, DemandKind
from aiqleads.kit.dialect import SQLITE_LEADS_PK_INDEX, lock_key, upsert
from aiqleads.kit.ids import uuid7_run
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.pricing.engine import DEMAND_WEIGHTS
from aiqleads.pricing.models import PriceChange, PriceSnapshot, PricingConfigVersion


class FactRow(NamedTuple):
    """A lead's pricing facts and its stored price (None before its first)."""

    id: uuid.UUID
    market: str
    kind: str
    quality_score: int
    fraud_score: float
    created_at: datetime
    exclusivity: Exclusivity
    sales_count: int
    stored_cents: int | None


class PricingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def latest_config(self, market: str) -> PricingConfigVersion | None:
        return await self.session.scalar(
            sa.select(PricingConfigVersion)
            .where(PricingConfigVersion.market == market)
            .order_by(PricingConfigVersion.version.desc())
            .limit(1)
        )

    async def config_version(self, market: str, version: int) -> PricingConfigVersion | None:
        return await self.session.get(PricingConfigVersion, (market, version))

    def add_config(self, row: PricingConfigVersion) -> None:
        self.session.add(row)

    async def demand(self, since: datetime) -> dict[tuple[str, str], float]:
        """Weighted views, cart adds and purchases per (market, kind) since `since`, each
        agent counted once per lead and kind of event: one agent reloading a lead page, or
        adding and removing it again and again, is one signal, not a lever on everyone's
        prices."""
        distinct = (
            sa.select(
                DemandEvent.market,
                DemandEvent.lead_kind,
                DemandEvent.kind,
                DemandEvent.user_id,
                DemandEvent.lead_id,
            )
            .where(
                DemandEvent.created_at >= since,
                DemandEvent.kind.in_([DemandKind(k) for k in DEMAND_WEIGHTS]),
                DemandEvent.market.is_not(None),
                DemandEvent.lead_kind.is_not(None),
            )
            .distinct()
            .subquery()
        )
        weight = sa.case(
            *((distinct.c.kind == DemandKind(k), w) for k, w in DEMAND_WEIGHTS.items()),
            else_=0,
        )
        rows = await self.session.execute(
            sa.select(distinct.c.market, distinct.c.lead_kind, sa.func.sum(weight)).group_by(
                distinct.c.market, distinct.c.lead_kind
            )
        )
        return {(m, k): float(total or 0) for m, k, total in rows.all()}

    async def held_quote(
        self, lead_id: uuid.UUID, buyer_id: uuid.UUID, now: datetime
    ) -> dict[str, Any] | None:
        """The quote kept by the buyer's live hold on the lead, if any."""
        quote: dict[str, Any] | None = await self.session.scalar(
            sa.select(Hold.quote).where(
                Hold.lead_id == lead_id,
                Hold.buyer_id == buyer_id,
                Hold.status == HoldStatus.ACTIVE,
                Hold.expires_at > now,
                Hold.quote.is_not(None),
            )
        )
        return quote

    async def supply(self) -> dict[tuple[str, str], int]:
        """Leads on sale per (market, kind)."""
        rows = await self.session.execute(
            sa.select(Lead.market, Lead.kind, sa.func.count())
            .where(Lead.status == LeadStatus.AVAILABLE, Lead.market.is_not(None))
            .group_by(Lead.market, Lead.kind)
        )
        return {(str(m), k): int(n) for m, k, n in rows.all()}

    async def snapshots(self, market: str | None = None) -> dict[tuple[str, str], PriceSnapshot]:
        query = sa.select(PriceSnapshot)
        if market is not None:
            query = query.where(PriceSnapshot.market == market)
        return {(s.market, s.kind): s for s in await self.session.scalars(query)}

    async def save_snapshots(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = upsert(self._dialect, PriceSnapshot.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["market", "kind"],
            set_={
                c: stmt.excluded[c]
                for c in ("demand", "market_demand", "available", "config_version", "as_of")
            },
        )
        await self.session.execute(stmt, list(rows))

    async def lead_facts(
        self,
        *,
        market: str | None = None,
        after: uuid.UUID | None = None,
        limit: int = 10_000,
    ) -> list[FactRow]:
        """Facts of available leads in id order (a keyset page, over a market if given), with
        each one's stored price (`stored_cents`, None before its first).

        Through the driver: a full recompute reads every lead on sale, and SQLAlchemy's
        per-row result processing (time zones, enums, UUIDs) was most of the reading (on
        PostgreSQL 9 of 13 s for 900,000 leads; on SQLite half of 24 s for 1,000,000)."""
        sqlite = self._dialect == "sqlite"
        conditions = ["l.status = 'available'", "l.market IS NOT NULL"]
        args: list[Any] = []

        def bind(value: Any) -> str:
            args.append(value)
            return "?" if sqlite else f"${len(args)}"

        key: Any = None  # `after` as the driver takes it
        if after is not None:
            key = after.hex if sqlite else after
        join = "p.lead_id = l.id"
        if key is not None:
            # On the prices' side too: PostgreSQL merge-joins the two primary keys, and without
            # it read lead_prices from its first row for every page (half-way through 900,000
            # leads, a page took 200 ms instead of 89; a recompute's reading, 22 s).
            join += f" AND p.lead_id > {bind(key)}"
        if market is not None:
            conditions.append(f"l.market = {bind(market)}")
        if key is not None:
            conditions.append(f"l.id > {bind(key)}")
        # In id order, by the primary key's index: without statistics SQLite otherwise picks
        # an index that starts with status and sorts every lead on sale again for each page (a
        # recompute of 1,000,000 leads took 324 s).
        leads = f"leads l INDEXED BY {SQLITE_LEADS_PK_INDEX}" if sqlite else "leads l"
        sql = (
            "SELECT l.id, l.market, l.kind, l.quality_score, l.fraud_score, l.created_at, "
            f"l.exclusivity, l.sales_count, p.price_cents FROM {leads} LEFT JOIN lead_prices p "
            f"ON {join} WHERE {' AND '.join(conditions)} ORDER BY l.id "
            f"LIMIT {bind(limit)}"
        )
        driver = await self._driver()
        exclusivity = {e.value: e for e in Exclusivity}
        if sqlite:
            # SQLAlchemy's storage formats: a UUID as 32 hex digits, a time as ISO text in UTC
            # (parsed with its offset written out: 0.3 µs, against 1.7 µs for a parse and
            # `replace(tzinfo=UTC)`).
            parse = datetime.fromisoformat
            return [
                FactRow(
                    uuid.UUID(r[0]),
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    parse(r[5] + "+00:00"),
                    exclusivity[r[6]],
                    r[7],
                    r[8],
                )
                for r in await driver.execute_fetchall(sql, args)
            ]
        return [
            FactRow(
                uuid.UUID(bytes=r[0].bytes),
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                exclusivity[r[6]],
                r[7],
                r[8],
            )
            for r in await driver.fetch(sql, *args)
        ]

    async def _driver(self) -> Any:
        """The session's driver connection (asyncpg or aiosqlite), inside the session's
        transaction. SQLAlchemy
        begins that transaction lazily, at its own first statement; before it, each driver
        statement would commit alone (and `price_stage`, ON COMMIT DELETE ROWS, would empty
        between the COPY and the INSERT that reads it)."""
        connection = await self.session.connection()
        await connection.execute(sa.select(sa.literal(1)))
        raw = await connection.get_raw_connection()
        return raw.driver_connection

    async def lock_markets(self, markets: Sequence[str]) -> None:
        """Take turns with any other recompute of these markets until the transaction ends
        (PostgreSQL; SQLite's single writer already serialises the writes). In sorted order,
        so a recompute of every market and one of a single market cannot deadlock."""
        for market in sorted(set(markets)):
            await lock_key(self.session, f"pricing.recompute|{market}")

    async def save_prices(self, rows: Sequence[dict[str, Any]], at: datetime) -> int:
        """Store new prices, with a history row for each one that differs from the price
        stored at the moment of writing (another recompute may have stored the same price
        since `rows` were priced). Returns how many prices changed."""
        if not rows:
            return 0
        if self._dialect == "postgresql":
            return await self._save_prices_copy(rows, at)
        return await self._save_prices_sqlite(rows, at)

    async def _save_prices_sqlite(self, rows: Sequence[dict[str, Any]], at: datetime) -> int:
        """SQLite: the same two writes through the driver, values in SQLAlchemy's own storage
        formats (a UUID as 32 hex digits, a time as `YYYY-MM-DD HH:MM:SS.ffffff` in UTC).
        SQLAlchemy's per-row bind processing was most of a first recompute's writing. The
        history rows go first, each only where the stored price differs, so both statements
        compare against the prices as they are inside this (the only) write transaction."""
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        driver = await self._driver()
        # Time-ordered ids: the batch's history rows go to the end of the key's index
        # together instead of onto a random page each (kit.ids).
        logged = await driver.executemany(
            "INSERT INTO price_history (id, lead_id, price_cents, config_version, computed_at) "
            "SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM lead_prices "
            "WHERE lead_id = ?2 AND price_cents = ?3)",
            [
                (f"{i:032x}", r["lead_id"].hex, r["price_cents"], r["config_version"], stamp)
                for i, r in zip(uuid7_run(len(rows), at), rows, strict=True)
            ],
        )
        await driver.executemany(
            "INSERT INTO lead_prices (lead_id, price_cents, config_version, computed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (lead_id) DO UPDATE SET "
            "price_cents = excluded.price_cents, config_version = excluded.config_version, "
            "computed_at = excluded.computed_at "
            "WHERE lead_prices.price_cents != excluded.price_cents",
            [(r["lead_id"].hex, r["price_cents"], r["config_version"], stamp) for r in rows],
        )
        changed: int = logged.rowcount
        return changed

    async def _save_prices_copy(self, rows: Sequence[dict[str, Any]], at: datetime) -> int:
        """PostgreSQL: COPY the prices into a temporary table, then upsert and log them in one
        set-based statement (a full recompute of a million leads writes every price; one
        statement per row spent most of its time in round trips). The upsert changes only
        prices that differ from the stored one when it reaches the row (it waits for another
        transaction writing the same lead), and the history logs what it changed. History
        rows get time-ordered ids, as on SQLite."""
        driver = await self._driver()
        await driver.execute(
            "CREATE TEMP TABLE IF NOT EXISTS price_stage (id uuid, lead_id uuid, "
            "price_cents bigint, config_version integer) ON COMMIT DELETE ROWS"
        )
        await driver.copy_records_to_table(
            "price_stage",
            records=[
                (uuid.UUID(int=i), r["lead_id"], r["price_cents"], r["config_version"])
                for i, r in zip(uuid7_run(len(rows), at), rows, strict=True)
            ],
        )
        changed: int = await driver.fetchval(
            "WITH stored AS ("
            "INSERT INTO lead_prices (lead_id, price_cents, config_version, computed_at) "
            "SELECT lead_id, price_cents, config_version, $1 FROM price_stage "
            "ON CONFLICT (lead_id) DO UPDATE SET price_cents = EXCLUDED.price_cents, "
            "config_version = EXCLUDED.config_version, computed_at = EXCLUDED.computed_at "
            "WHERE lead_prices.price_cents <> EXCLUDED.price_cents RETURNING lead_id), "
            "logged AS ("
            "INSERT INTO price_history (id, lead_id, price_cents, config_version, computed_at) "
            "SELECT s.id, s.lead_id, s.price_cents, s.config_version, $1 "
            "FROM price_stage s JOIN stored USING (lead_id) RETURNING 1) "
            "SELECT count(*) FROM logged",
            at,
        )
        await driver.execute("TRUNCATE price_stage")
        return changed

    async def history(self, lead_id: uuid.UUID, limit: int = 50) -> list[PriceChange]:
        return list(
            await self.session.scalars(
                sa.select(PriceChange)
                .where(PriceChange.lead_id == lead_id)
                .order_by(PriceChange.computed_at.desc())
                .limit(limit)
            )
        )
