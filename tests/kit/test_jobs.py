"""Jobs: sent only after commit, dropped on rollback, periodic schedule, and the Redis queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from taskiq import InMemoryBroker

from aiqleads.accounts.models import LoginThrottle
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.db import defer_job
from aiqleads.kit.jobs import JobRunner, JobSpec, PeriodicSchedule, job
from aiqleads.runtime import JobContext, Runtime
from aiqleads.settings import Settings
from tests.conftest import REDIS_URL, TEST_SECRET

SEEN: list[tuple[str, int | None]] = []


@job("tests.read_row")
async def read_row(ctx: JobContext, key: str) -> None:
    """Records what the job saw in the database: proof it ran after the commit."""
    async with ctx.transaction() as session:
        row = await session.get(LoginThrottle, key)
        SEEN.append((key, row.failures if row else None))


async def _write_and_defer(runtime: Runtime, key: str, fail: bool) -> None:
    async with runtime.transaction() as session:
        session.add(LoginThrottle(email_key=key, failures=7, updated_at=datetime.now(UTC)))
        defer_job(session, "tests.read_row", {"key": key})
        await session.flush()
        await asyncio.sleep(0.05)
        assert (key, 7) not in SEEN
        assert (key, None) not in SEEN
        if fail:
            raise RuntimeError("boom")


async def _wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for the job"
        await asyncio.sleep(0.05)


async def test_in_process_jobs_run_after_commit_and_never_after_rollback(runtime: Runtime) -> None:
    SEEN.clear()
    await _write_and_defer(runtime, "committed", fail=False)
    with pytest.raises(RuntimeError):
        await _write_and_defer(runtime, "rolled-back", fail=True)
    await runtime.jobs.wait_idle()
    assert SEEN == [("committed", 7)]


def test_periodic_schedule_runs_each_job_at_start_then_every_interval() -> None:
    async def noop(ctx: JobContext) -> None:
        return None

    clock = FrozenClock()
    fast = JobSpec("fast", noop, every=timedelta(seconds=10))
    slow = JobSpec("slow", noop, every=timedelta(minutes=1))
    schedule = PeriodicSchedule([fast, slow], clock)
    assert [s.name for s in schedule.due()] == ["fast", "slow"]
    assert schedule.due() == []
    clock.advance(timedelta(seconds=10))
    assert [s.name for s in schedule.due()] == ["fast"]
    clock.advance(timedelta(seconds=50))
    assert [s.name for s in schedule.due()] == ["fast", "slow"]


def test_the_outbox_sweeper_is_registered_as_periodic() -> None:
    from aiqleads.kit.jobs import periodic_jobs

    Runtime(
        Settings(env="test", database_url="sqlite+aiosqlite:///:memory:", secret_key=TEST_SECRET)
    )
    assert "mail.sweep_outbox" in {spec.name for spec in periodic_jobs()}


@pytest.mark.redis
async def test_redis_worker_runs_committed_jobs_only(database_url: str) -> None:
    redis_url = REDIS_URL
    assert redis_url
    async with Redis.from_url(redis_url) as redis:
        await redis.delete("aiqleads:jobs")
    settings = Settings(
        env="test", database_url=database_url, secret_key=TEST_SECRET, redis_url=redis_url
    )
    api_side, worker_side = Runtime(settings), Runtime(settings)
    await api_side.startup()
    await worker_side.startup()
    worker = asyncio.create_task(worker_side.jobs.run_worker())
    SEEN.clear()
    try:
        assert not api_side.jobs.in_process
        with pytest.raises(RuntimeError):
            await _write_and_defer(api_side, "redis-rolled-back", fail=True)
        await _write_and_defer(api_side, "redis-committed", fail=False)
        await _wait_for(lambda: SEEN)
        await asyncio.sleep(0.2)
        assert SEEN == [("redis-committed", 7)]
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await api_side.shutdown()
        await worker_side.shutdown()


def test_wait_idle_returns_when_a_job_finished_just_before() -> None:
    """A job that has finished but not yet left the broker's running set (its done-callback
    runs on the next turn of the loop) must not keep `wait_idle` spinning."""

    async def never(spec: JobSpec, kwargs: dict[str, object]) -> None:
        raise AssertionError("no job is sent here")

    broker = InMemoryBroker()
    runner = JobRunner(broker, never, FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)))
    waits = 0
    wait_all = broker.wait_all

    async def counted() -> None:
        nonlocal waits
        waits += 1
        assert waits < 100, "wait_idle spins on a finished job"
        await wait_all()

    async def scenario() -> None:
        async def done() -> None:
            return None

        task = asyncio.create_task(done())
        broker._running_tasks.add(task)
        task.add_done_callback(broker._running_tasks.discard)
        await asyncio.sleep(0)  # the task runs and finishes; its callback is only scheduled
        assert task.done()
        assert task in broker._running_tasks
        broker.wait_all = counted  # type: ignore[method-assign]
        await runner.wait_idle()

    asyncio.run(scenario())

    assert not broker._running_tasks
