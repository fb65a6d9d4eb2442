"""Background jobs on Taskiq: a registry, after-commit dispatch, periodic scheduling.

Jobs are registered by name with `@job(...)` in each domain's `tasks.py`. A `JobRunner`
binds them to a broker chosen by configuration: in-process (`InMemoryBroker`) by default,
Redis (`ListQueueBroker`) when a Redis URL is set, with `aiqleads worker` processes
consuming and one `aiqleads scheduler` process kicking periodic jobs. The queue only wakes
workers: work that must not be lost is a database row first, and a periodic sweeper
re-queues rows a crash left unfinished, so a lost queue message delays work, never loses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.api import run_receiver_task

from aiqleads.kit.clock import Clock
from aiqleads.kit.db import PendingJob

log = structlog.get_logger(__name__)

JobFn = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    """A named background job; `every` makes it periodic."""

    name: str
    fn: JobFn
    every: timedelta | None = None


REGISTRY: dict[str, JobSpec] = {}


def job(name: str, *, every: timedelta | None = None) -> Callable[[JobFn], JobSpec]:
    """Register `fn(ctx, **ids)` as the job `name`. Arguments must be JSON (ids, not rows)."""

    def register(fn: JobFn) -> JobSpec:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"job {name!r} is registered twice")
        spec = JobSpec(name=name, fn=fn, every=every)
        REGISTRY[name] = spec
        return spec

    return register


def periodic_jobs() -> list[JobSpec]:
    return [spec for spec in REGISTRY.values() if spec.every is not None]


class PeriodicSchedule:
    """Which periodic jobs are due now; each runs once at start, then every `every`."""

    def __init__(self, specs: list[JobSpec], clock: Clock) -> None:
        self._clock = clock
        now = clock.now()
        self._specs = specs
        self._next: dict[str, datetime] = {spec.name: now for spec in specs}

    def due(self) -> list[JobSpec]:
        now = self._clock.now()
        ready = [spec for spec in self._specs if self._next[spec.name] <= now]
        for spec in ready:
            assert spec.every is not None
            self._next[spec.name] = now + spec.every
        return ready


Executor = Callable[[JobSpec, dict[str, Any]], Awaitable[None]]


class JobRunner:
    """Binds the registered jobs to one broker and sends, runs and schedules them."""

    def __init__(self, broker: AsyncBroker, execute: Executor, clock: Clock) -> None:
        self.broker = broker
        self._clock = clock
        self.in_process = isinstance(broker, InMemoryBroker)
        for spec in REGISTRY.values():
            broker.register_task(_bind(spec, execute), task_name=spec.name)

    @classmethod
    def create(cls, redis_url: str | None, execute: Executor, clock: Clock) -> JobRunner:
        broker: AsyncBroker
        if redis_url:
            from taskiq_redis import ListQueueBroker

            broker = ListQueueBroker(url=redis_url, queue_name="aiqleads:jobs")
        else:
            broker = InMemoryBroker(max_async_tasks=20)
        return cls(broker, execute, clock)

    async def startup(self) -> None:
        await self.broker.startup()

    async def shutdown(self) -> None:
        if isinstance(self.broker, InMemoryBroker):
            # Let running jobs finish; anything cut off is still a row the sweeper finds.
            try:
                await asyncio.wait_for(self.broker.wait_all(), timeout=10)
            except TimeoutError:
                log.warning("jobs_still_running_at_shutdown")
        await self.broker.shutdown()

    async def dispatch(self, jobs: list[PendingJob]) -> None:
        """Send committed jobs. A send failure is logged: the sweeper will pick the row up."""
        for name, kwargs in jobs:
            task = self.broker.find_task(name)
            if task is None:
                log.error("unknown_job", job=name)
                continue
            try:
                await task.kiq(**kwargs)
            except Exception as exc:  # broker unreachable: the row stays for the sweeper
                log.error("job_send_failed", job=name, error=repr(exc))

    async def wait_idle(self) -> None:
        """In-process only: wait until every job sent so far (and any it sent) has run."""
        if isinstance(self.broker, InMemoryBroker):
            while self.broker._running_tasks:
                await self.broker.wait_all()
                # A finished job leaves the set by a done-callback, which runs on a later turn
                # of the loop; awaiting a finished task does not yield, so without this turn a
                # job that finished just before the call kept this loop spinning for ever.
                await asyncio.sleep(0)

    async def run_scheduler(self, tick_seconds: float = 1.0) -> None:
        """Kick periodic jobs when due, forever (cancel to stop). Run one per deployment."""
        schedule = PeriodicSchedule(periodic_jobs(), self._clock)
        while True:
            due = schedule.due()
            if due:
                await self.dispatch([(spec.name, {}) for spec in due])
            await asyncio.sleep(tick_seconds)

    async def run_worker(self) -> None:
        """Consume the Redis queue until cancelled (`aiqleads worker`)."""
        await run_receiver_task(self.broker, max_async_tasks=20)


def _bind(spec: JobSpec, execute: Executor) -> Callable[..., Awaitable[None]]:
    async def run(**kwargs: Any) -> None:
        await execute(spec, kwargs)

    run.__name__ = spec.name.replace(".", "_")
    return run
