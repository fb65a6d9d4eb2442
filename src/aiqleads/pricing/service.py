"""Pricing rules around the engine: configurations and their versions, snapshots of demand and
supply, recomputing stored prices, explaining a price and simulating a configuration."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.kit.errors import Conflict, NotFound
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import LEAD_KINDS, Lead, LeadRow
from aiqleads.pricing.config import DEFAULT_CONFIG, PricingConfig
from aiqleads.pricing.engine import (
    TIERS,
    LeadFacts,
    Price,
    Segment,
    SegmentPricer,
    price,
)
from aiqleads.pricing.models import PriceSnapshot, PricingConfigVersion
from aiqleads.pricing.repository import FactRow, PricingRepository
from aiqleads.pricing.schemas import (
    PlanSimulation,
    PriceOut,
    PriceStats,
    PriceStepOut,
    PricingConfigOut,
    SimulatedLead,
    SimulatedPrice,
    SimulationOut,
)
from aiqleads.runtime import Runtime

log = structlog.get_logger(__name__)

DEMAND_WINDOW = timedelta(days=7)
RECOMPUTE_CHUNK = 10_000


def facts_of(row: Any) -> LeadFacts:
    """The pricing facts of a Lead or of a row with the repository's FACT_COLUMNS."""
    return LeadFacts(
        kind=row.kind,
        quality_score=row.quality_score,
        fraud_score=row.fraud_score,
        created_at=row.created_at,
        exclusivity=row.exclusivity,
        sales_count=row.sales_count,
    )


def segment_of(snapshot: PriceSnapshot) -> Segment:
    return Segment(snapshot.demand, snapshot.available, snapshot.market_demand)


def _stats(values: Sequence[int]) -> PriceStats | None:
    if not values:
        return None
    return PriceStats(
        mean_cents=round(statistics.fmean(values)),
        median_cents=round(statistics.median(values)),
        min_cents=min(values),
        max_cents=max(values),
    )


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"weights.demand": [0.25, 0.4], ...}: what a configuration update changed."""
    out: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            out.update(_changes(before, after, f"{prefix}{key}."))
        elif before != after:
            out[f"{prefix}{key}"] = [before, after]
    return out


def _changed_meanwhile(latest: int) -> Conflict:
    return Conflict(
        f"The configuration changed while you edited it (version {latest} is the latest); "
        "reload and save again",
        code="pricing_config_changed",
    )


class Configs:
    """Configuration versions, loaded once each per process: a saved version never changes,
    and every search page, lead page and quote prices through the version its segment's
    snapshot names. (`cache` holds only versions read back from the database, so only
    committed ones: saving a version does not put it there.)"""

    def __init__(
        self, repo: PricingRepository, cache: dict[tuple[str, int], PricingConfig]
    ) -> None:
        self.repo = repo
        self._cache = cache

    async def latest(self, market: str) -> tuple[int, PricingConfig]:
        row = await self.repo.latest_config(market)
        if row is None:
            return 0, DEFAULT_CONFIG
        config = PricingConfig.model_validate(row.config)
        self._cache[(market, row.version)] = config
        return row.version, config

    async def at(self, market: str, version: int) -> PricingConfig:
        if version == 0:
            return DEFAULT_CONFIG
        key = (market, version)
        if key not in self._cache:
            row = await self.repo.config_version(market, version)
            self._cache[key] = (
                PricingConfig.model_validate(row.config) if row is not None else DEFAULT_CONFIG
            )
        return self._cache[key]


class PricingService:
    """Pricing inside one transaction (a request or one step of a job)."""

    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.repo = PricingRepository(session)
        self.configs = Configs(self.repo, runtime.pricing_configs)

    def _market(self, market: str) -> str:
        if market not in self.runtime.markets:
            raise NotFound(f"No market {market!r}", code="unknown_market")
        return market

    # configuration

    async def config(self, market: str) -> PricingConfigOut:
        row = await self.repo.latest_config(self._market(market))
        if row is None:
            return PricingConfigOut(
                market=market, version=0, config=DEFAULT_CONFIG, created_at=None, created_by=None
            )
        return PricingConfigOut(
            market=market,
            version=row.version,
            config=PricingConfig.model_validate(row.config),
            created_at=row.created_at,
            created_by=row.created_by,
        )

    def recompute_requested(self, operator: User) -> None:
        """An operator asked for every price now (a saved configuration takes effect)."""
        audit(
            self.session,
            actor_id=operator.id,
            action="pricing.recompute_requested",
            subject_type="pricing",
            subject_id="all",
            at=self.runtime.clock.now(),
        )

    async def save_config(
        self, market: str, config: PricingConfig, admin: User, edited: int
    ) -> PricingConfigOut:
        """Save `config`, an edit of version `edited`, as the next version; prices follow it
        at the next recompute. Audited. Refused if `edited` is no longer the latest: saving
        it would silently undo the versions saved since."""
        current = await self.config(market)
        if edited != current.version:
            raise _changed_meanwhile(current.version)
        now = self.runtime.clock.now()
        new = config.model_dump(mode="json")
        row = PricingConfigVersion(
            market=market,
            version=current.version + 1,
            config=new,
            created_at=now,
            created_by=admin.id,
        )
        self.repo.add_config(row)
        try:
            await self.session.flush()
        except IntegrityError as exc:  # another operator saved this version a moment ago
            raise _changed_meanwhile(row.version) from exc
        audit(
            self.session,
            actor_id=admin.id,
            action="pricing.config_saved",
            subject_type="pricing_config",
            subject_id=market,
            at=now,
            detail={
                "version": row.version,
                "changes": _changes(current.config.model_dump(mode="json"), new),
            },
        )
        await self.session.flush()
        return PricingConfigOut(
            market=market, version=row.version, config=config, created_at=now, created_by=admin.id
        )

    # demand and supply

    async def measure(self, now: datetime) -> list[dict[str, Any]]:
        """Demand and supply of every segment now, with each market's configuration in force."""
        demand = await self.repo.demand(now - DEMAND_WINDOW)
        supply = await self.repo.supply()
        rows = []
        for market in self.runtime.markets.all():
            version, _ = await self.configs.latest(market.slug)
            market_demand = sum(v for (m, _), v in demand.items() if m == market.slug)
            for kind in LEAD_KINDS:
                rows.append(
                    {
                        "market": market.slug,
                        "kind": kind,
                        "demand": demand.get((market.slug, kind), 0.0),
                        "market_demand": market_demand,
                        "available": supply.get((market.slug, kind), 0),
                        "config_version": version,
                        "as_of": now,
                    }
                )
        return rows

    async def snapshot_for(self, market: str, kind: str) -> PriceSnapshot | None:
        """The segment's snapshot; before the first recompute, one measured now (not saved).
        None for a market or kind that is not configured (such a lead has no price)."""
        snapshots = await self.repo.snapshots(market)
        if (market, kind) in snapshots:
            return snapshots[(market, kind)]
        now = self.runtime.clock.now()
        rows = await self.measure(now)
        row = next((r for r in rows if r["market"] == market and r["kind"] == kind), None)
        return PriceSnapshot(**row) if row is not None else None

    # one lead

    async def quote(self, lead: Lead, plan: str) -> tuple[Price, PriceSnapshot, PricingConfig]:
        """What `lead` costs a buyer on `plan` now: the number shown, explained and locked
        into a cart hold."""
        snapshot = (
            await self.snapshot_for(lead.market, lead.kind) if lead.market is not None else None
        )
        if lead.market is None or snapshot is None:
            raise NotFound("This lead is in no market we price", code="lead_not_priced")
        config = await self.configs.at(lead.market, snapshot.config_version)
        quoted = price(facts_of(lead), segment_of(snapshot), config, snapshot.as_of, plan)
        return quoted, snapshot, config

    async def pricer(self, snapshot: PriceSnapshot, plan: str = "basic") -> SegmentPricer:
        """Prices of the snapshot's segment for a buyer on `plan`, by its configuration."""
        config = await self.configs.at(snapshot.market, snapshot.config_version)
        return SegmentPricer(
            config.base_cents[snapshot.kind], segment_of(snapshot), config, snapshot.as_of, plan
        )

    async def prices(self, leads: Sequence[Lead | LeadRow], plan: str) -> dict[uuid.UUID, int]:
        """Prices of a page of leads (entities, or rows with their columns) for a buyer on
        `plan` (one snapshot read for them all); leads not on sale, or in no market, have
        none."""
        on_sale = [x for x in leads if x.status is LeadStatus.AVAILABLE and x.market is not None]
        if not on_sale:
            return {}
        markets = {x.market for x in on_sale}
        snapshots = await self.repo.snapshots(markets.pop() if len(markets) == 1 else None)
        pricers: dict[tuple[str, str], SegmentPricer | None] = {}
        out = {}
        for lead in on_sale:
            assert lead.market is not None
            key = (lead.market, lead.kind)
            if key not in pricers:
                snapshot = snapshots.get(key) or await self.snapshot_for(*key)
                pricers[key] = None if snapshot is None else await self.pricer(snapshot, plan)
            pricer = pricers[key]
            if pricer is None:  # a market or kind that is not configured
                continue
            # The number `price` arrives at, without writing out its steps (`explain` does).
            out[lead.id] = pricer(
                lead.quality_score,
                lead.fraud_score,
                lead.created_at,
                lead.exclusivity,
                lead.sales_count,
            )
        return out

    async def explain(self, lead_id: uuid.UUID, viewer: User) -> PriceOut:
        """The lead's price for `viewer`, explained: the one locked in their cart while they
        hold it (also once an exclusive lead is off sale for everyone else), else today's."""
        locked = await self.repo.held_quote(lead_id, viewer.id, self.runtime.clock.now())
        if locked is not None:
            return PriceOut.model_validate(locked)
        lead = await self.session.get(Lead, lead_id)
        if lead is None or lead.status is not LeadStatus.AVAILABLE:
            raise NotFound("No such lead on sale", code="lead_not_found")
        return await self.explained(lead, viewer.plan)

    async def explained(self, lead: Lead, plan: str) -> PriceOut:
        """What `lead` costs a buyer on `plan` now, with each step (the quote a hold keeps)."""
        quoted, snapshot, config = await self.quote(lead, plan)
        return PriceOut(
            lead_id=lead.id,
            market=snapshot.market,
            plan=plan,
            base_cents=quoted.base_cents,
            price_cents=quoted.final_cents,
            steps=[
                PriceStepOut(
                    factor=s.name,
                    multiplier=round(s.multiplier, 4) if s.multiplier is not None else None,
                    contribution_cents=s.contribution_cents,
                    price_after_cents=s.price_after_cents,
                    detail=s.detail,
                )
                for s in quoted.steps
            ],
            floor_cents=config.floor_cents,
            ceiling_cents=config.ceiling_cents,
            config_version=snapshot.config_version,
            as_of=snapshot.as_of,
        )

    # what-if

    async def simulate(self, market: str, proposed: PricingConfig, sample: int) -> SimulationOut:
        """Prices of up to `sample` leads on sale in `market`, for each plan, now and under
        `proposed`. A lead counts as changed if its price for any plan would change (a new
        plan discount changes no Basic price)."""
        self._market(market)
        snapshots = await self.repo.snapshots(market)
        rows = await self.repo.lead_facts(market=market, limit=sample)
        # Per kind, each plan's pricers now and under `proposed` (None: a kind not priced).
        pricers: dict[str, dict[str, tuple[SegmentPricer, SegmentPricer]] | None] = {}
        current: dict[str, list[int]] = {tier: [] for tier in TIERS}
        new: dict[str, list[int]] = {tier: [] for tier in TIERS}
        changed = 0
        examples: list[SimulatedLead] = []
        for row in rows:
            if row.kind not in pricers:
                snapshot = snapshots.get((market, row.kind)) or await self.snapshot_for(
                    market, row.kind
                )
                pricers[row.kind] = (
                    None if snapshot is None else await self._plan_pricers(snapshot, proposed)
                )
            by_tier = pricers[row.kind]
            if by_tier is None:
                continue
            facts = (
                row.quality_score,
                row.fraud_score,
                row.created_at,
                row.exclusivity,
                row.sales_count,
            )
            plans = {
                tier: SimulatedPrice(current_cents=as_is(*facts), proposed_cents=to_be(*facts))
                for tier, (as_is, to_be) in by_tier.items()
            }
            for tier, quoted in plans.items():
                current[tier].append(quoted.current_cents)
                new[tier].append(quoted.proposed_cents)
            changed += any(p.current_cents != p.proposed_cents for p in plans.values())
            if len(examples) < 20:
                examples.append(
                    SimulatedLead(
                        lead_id=row.id,
                        kind=row.kind,
                        current_cents=plans["basic"].current_cents,
                        proposed_cents=plans["basic"].proposed_cents,
                        plans=plans,
                    )
                )
        figures = {
            tier: PlanSimulation(
                changed=sum(a != b for a, b in zip(current[tier], new[tier], strict=True)),
                current=_stats(current[tier]),
                proposed=_stats(new[tier]),
            )
            for tier in TIERS
        }
        return SimulationOut(
            market=market,
            leads=len(rows),
            changed=changed,
            current=figures["basic"].current,
            proposed=figures["basic"].proposed,
            plans=figures,
            examples=examples,
        )

    async def _plan_pricers(
        self, snapshot: PriceSnapshot, proposed: PricingConfig
    ) -> dict[str, tuple[SegmentPricer, SegmentPricer]]:
        """Each plan's pricer of the snapshot's segment by its configuration and by
        `proposed`."""
        return {
            tier: (
                await self.pricer(snapshot, tier),
                SegmentPricer(
                    proposed.base_cents[snapshot.kind],
                    segment_of(snapshot),
                    proposed,
                    snapshot.as_of,
                    tier,
                ),
            )
            for tier in TIERS
        }


@dataclass(frozen=True)
class RecomputeResult:
    priced: int
    changed: int


def _priced(
    rows: Sequence[FactRow],
    pricers: dict[tuple[str, str], tuple[SegmentPricer, int]],
) -> list[dict[str, Any]]:
    """The prices among `rows` that changed (pure arithmetic: runs on a worker thread)."""
    updates = []
    for row in rows:
        found = pricers.get((row.market, row.kind))
        if found is None:  # a market or kind no longer configured
            continue
        pricer, version = found
        cents = pricer(
            row.quality_score, row.fraud_score, row.created_at, row.exclusivity, row.sales_count
        )
        if row.stored_cents != cents:
            updates.append({"lead_id": row.id, "price_cents": cents, "config_version": version})
    return updates


async def recompute(runtime: Runtime, *, market: str | None = None) -> RecomputeResult:
    """Measure demand and supply again (a new snapshot, which also brings in a newly saved
    configuration), then store the price of every lead on sale (in `market`) with a history
    row where it changed.

    Each chunk of leads is its own transaction, so SQLite's writer is never held for long.
    A transaction stores one chunk's prices and reads the next chunk's leads; the next
    chunk is priced on a worker thread while the transaction commits (on SQLite a commit is
    one long call that lets go of the GIL: a first recompute of 1,000,000 leads spent 11 of
    its 79 s committing).

    Recomputes overlap (the schedule, an operator's request, a cart add's market): each
    write transaction takes its markets' locks, and a price counts as changed (with a history
    row) only if it differs from the one stored when it is written, not when it was read."""
    now = runtime.clock.now()
    loop = asyncio.get_running_loop()
    markets = [market] if market is not None else [m.slug for m in runtime.markets.all()]
    async with runtime.transaction() as session:
        service = PricingService(session, runtime)
        await service.repo.lock_markets(markets)
        await service.repo.save_snapshots(
            [r for r in await service.measure(now) if market is None or r["market"] == market]
        )
        pricers = {
            key: (await service.pricer(snapshot), snapshot.config_version)
            for key, snapshot in (await service.repo.snapshots(market)).items()
        }
        rows = await service.repo.lead_facts(market=market, limit=RECOMPUTE_CHUNK)
        pricing = loop.run_in_executor(None, _priced, rows, pricers)
    priced = changed = 0
    while rows:
        updates = await pricing
        after = rows[-1].id
        priced += len(rows)
        async with runtime.transaction() as session:
            repo = PricingRepository(session)
            if updates:
                await repo.lock_markets(markets)
            changed += await repo.save_prices(updates, now)
            rows = await repo.lead_facts(market=market, after=after, limit=RECOMPUTE_CHUNK)
            pricing = loop.run_in_executor(None, _priced, rows, pricers)
    log.info("prices_recomputed", market=market, priced=priced, changed=changed)
    return RecomputeResult(priced, changed)
