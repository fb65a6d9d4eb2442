"""The process-wide objects every request and job shares, built once from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.billing.plans import PlanCatalog, load_plans
from aiqleads.billing.provider import StripeGateway
from aiqleads.demand.recorder import DemandRecorder
from aiqleads.ingest.sources import SourceCatalog, load_sources
from aiqleads.kit import heap
from aiqleads.kit.clock import Clock, SystemClock
from aiqleads.kit.db import Database, create_engine
from aiqleads.kit.jobs import JobRunner, JobSpec
from aiqleads.kit.ratelimit import MemoryLimiter, RateLimiter, RedisLimiter
from aiqleads.markets.catalog import MarketCatalog, load_markets
from aiqleads.pricing.config import PricingConfig
from aiqleads.settings import Settings

log = structlog.get_logger(__name__)

# Each domain with background jobs lists its tasks module here so they register.
TASK_MODULES = (
    "aiqleads.accounts.tasks",
    "aiqleads.mail.tasks",
    "aiqleads.ingest.tasks",
    "aiqleads.pricing.tasks",
    "aiqleads.search.tasks",
    "aiqleads.ledger.tasks",
    "aiqleads.cart.tasks",
    "aiqleads.billing.tasks",
)


class Runtime:
    """Settings, clock, database, jobs, markets, plans, Stripe and Redis of one process."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        for module in TASK_MODULES:
            importlib.import_module(module)
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db = Database(create_engine(settings.database_url, settings.database_pool_size))
        self.jobs = JobRunner.create(settings.redis_url, self._execute, self.clock)
        self.db.set_dispatcher(self.jobs.dispatch)
        self.markets: MarketCatalog = load_markets(settings.markets_file)
        self.sources: SourceCatalog = load_sources(settings.sources_file)
        self.plans: PlanCatalog = load_plans(settings.plans_file)
        # Without a Stripe key, payments are manual: operators mark invoices paid.
        self.stripe: StripeGateway | None = (
            StripeGateway(settings) if settings.stripe_secret_key else None
        )
        self.redis: Redis | None = (
            Redis.from_url(settings.redis_url) if settings.redis_url else None
        )
        # API rate limits are shared by every process through Redis, else kept in this one.
        self.limiter: RateLimiter = (
            RedisLimiter(self.redis) if self.redis is not None else MemoryLimiter()
        )
        # Saved pricing configurations by (market, version): a version never changes once
        # saved, so every request and job of this process reads each one once
        # (pricing.service.Configs).
        self.pricing_configs: dict[tuple[str, int], PricingConfig] = {}
        # Cart adds and purchases reprice their market (pricing.tasks).
        self.demand = DemandRecorder(
            self.db, self.clock, dispatch=self.jobs.dispatch, signal_job="pricing.recompute"
        )
        self._demand_task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        await self.jobs.startup()
        self._demand_task = asyncio.create_task(self.demand.run())
        heap.freeze()

    async def shutdown(self) -> None:
        if self._demand_task is not None:
            self._demand_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._demand_task
            try:
                await self.demand.flush()
            except Exception as exc:
                log.warning("demand_flush_failed", error=repr(exc))
        await self.jobs.shutdown()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.engine.dispose()
        heap.thaw()

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[AsyncSession]:
        """One unit of work (see `Database.unit_of_work`)."""
        return self.db.unit_of_work(write=write)

    async def _execute(self, spec: JobSpec, kwargs: dict[str, Any]) -> None:
        with structlog.contextvars.bound_contextvars(job=spec.name):
            try:
                await spec.fn(JobContext(self), **kwargs)
            except Exception as exc:
                log.exception("job_failed", error=repr(exc))


@dataclass(frozen=True)
class JobContext:
    """What a job receives: the runtime, and transactions on demand."""

    runtime: Runtime

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.runtime.transaction()
