"""Ingestion runs: fetch a source in batches, push each batch through the pipeline in its own
transaction, and record what happened. A crash loses at most the batch in flight, and
re-running picks up where the source's high-water mark stands."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.ingest.connectors.base import RawRecord
from aiqleads.ingest.connectors.http import SourceUnavailable
from aiqleads.ingest.models import IngestionRun, RunStatus
from aiqleads.ingest.pipeline import (
    BatchCounts,
    LeadPipeline,
    Prepared,
    Preparer,
    prepare_soon,
)
from aiqleads.ingest.registry import wire
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.sources import PULL_SOURCE_TYPES, SourceConfig
from aiqleads.kit.db import defer_job
from aiqleads.kit.dialect import Statistics, lock_key
from aiqleads.kit.errors import Conflict, NotFound
from aiqleads.quality.service import active_fraud_model

if TYPE_CHECKING:
    from aiqleads.runtime import Runtime

log = structlog.get_logger(__name__)

# Records per batch (one transaction each). Larger batches write each index page once for
# more rows; on SQLite a batch's transaction holds the one write lock, so API writes wait for
# it: 500 keeps that wait near half a second. PostgreSQL has no such lock.
BATCH_SIZES = {"sqlite": 500, "postgresql": 2_000}
BATCH_SIZE = BATCH_SIZES["sqlite"]  # any other dialect
# The tables a run's lookups probe; kept analysed while a bulk load makes them grow.
GROWING_TABLES = ("source_records", "leads", "lead_match_keys")
# A running run whose heartbeat is this old lost its process (a crash, a kill).
STALE_AFTER = timedelta(minutes=15)
# A run's heartbeat is written with every batch and, while it fetches, this often on its own:
# a polite crawl (2 s a page, 500 or 2,000 pages a batch) takes longer than STALE_AFTER to
# fill its first batch.
HEARTBEAT_EVERY = timedelta(minutes=1)
# A source's clock may run this far ahead of ours; a change stamped later than the run's start
# plus this is a typo (2206 for 2026) and never moves the high-water mark.
CLOCK_SKEW = timedelta(minutes=5)
REPLAY_JOB = "ingest.replay"
# Every write of records and leads (a pull batch, a webhook, an intake) takes this lock for
# its transaction (PostgreSQL; SQLite has one writer anyway): two pushes of one person at
# once each found no record and made two leads (or hit the unique index: a 500), and
# de-duplication across sources races the same way.
STORE_LOCK = "ingest.store"
COUNT_KEYS = ("fetched", "accepted", "merged", "updated", "unchanged", "quarantined", "failed")
Progress = Callable[[int], None]


def _add(run: IngestionRun, batch: BatchCounts) -> None:
    counts = Counter(run.counts)
    counts.update(batch.outcomes)
    counts["parsed"] = counts["fetched"] - counts["unchanged"] - counts["failed"]
    run.counts = {k: counts.get(k, 0) for k in (*COUNT_KEYS, "parsed")}
    reasons = Counter(run.quarantined_by_reason)
    reasons.update(batch.quarantined_by_reason)
    run.quarantined_by_reason = dict(reasons)


def new_run(
    source: str, trigger: str, now: datetime, replay_of: uuid.UUID | None = None
) -> IngestionRun:
    return IngestionRun(
        id=uuid.uuid4(),
        source=source,
        trigger=trigger,
        status=RunStatus.RUNNING,
        started_at=now,
        counts={k: 0 for k in (*COUNT_KEYS, "parsed")},
        quarantined_by_reason={},
        errors=[],
        replay_of=replay_of,
    )


async def _batches(records: AsyncIterable[RawRecord], size: int) -> AsyncIterator[list[RawRecord]]:
    batch: list[RawRecord] = []
    async for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _iterate(records: Iterable[RawRecord]) -> AsyncIterator[RawRecord]:
    for record in records:
        yield record


# What a source's configuration, connection or file can raise: the run fails, cleanly.
_SOURCE_ERRORS = (SourceUnavailable, ValueError, OSError)


class SourceFailed(Exception):
    """The source could not be reached or read (the run fails; what came before is kept)."""


class RunClosed(Exception):
    """Another process closed this run while it went on (it took the run for abandoned)."""


async def _guarded(stream: AsyncIterable[RawRecord]) -> AsyncIterator[RawRecord]:
    """The source's records; its errors become `SourceFailed`, told apart from our own."""
    try:
        async for record in stream:
            yield record
    except _SOURCE_ERRORS as exc:
        raise SourceFailed(str(exc)) from exc


def is_stale(run: IngestionRun, now: datetime) -> bool:
    """A running run whose process stopped: no heartbeat for `STALE_AFTER`."""
    last = run.heartbeat_at or run.started_at
    return run.status is RunStatus.RUNNING and now - last > STALE_AFTER


def _fail(run: IngestionRun, now: datetime, error: str) -> None:
    run.status = RunStatus.FAILED
    run.finished_at = now
    run.errors = [*run.errors, error]


def abandon(run: IngestionRun, now: datetime) -> None:
    last = run.heartbeat_at or run.started_at
    _fail(run, now, f"abandoned: no progress since {last.isoformat()} (its process stopped)")
    log.warning("ingestion_run_abandoned", source=run.source, run=str(run.id))


async def _claim(
    session: AsyncSession, runtime: Runtime, source: SourceConfig, own: uuid.UUID | None
) -> None:
    """One live run per source: a stale one is closed as abandoned, a live one refuses."""
    now = runtime.clock.now()
    for other in await IngestRepository(session).running(source.slug):
        if other.id == own:
            continue
        if is_stale(other, now):
            abandon(other, now)
        else:
            raise Conflict(
                f"Source {source.slug} is being ingested by run {other.id} "
                f"(started {other.started_at.isoformat()})",
                code="run_in_progress",
            )


def _high_water(prepared: Prepared, ceiling: datetime) -> datetime | None:
    """The newest change time of a batch, leaving out times later than `ceiling` (a typo at
    the source would otherwise put the mark in the future and stop incremental sync)."""
    newest = prepared.high_water_mark
    if newest is None or newest <= ceiling:
        return newest
    times = [(item.raw.source_key, item.raw.source_updated_at) for item in prepared.items]
    odd = [key for key, when in times if when is not None and when > ceiling]
    log.warning("source_timestamp_in_future", keys=odd[:10], count=len(odd), newest=newest)
    return max((when for _, when in times if when is not None and when <= ceiling), default=None)


@asynccontextmanager
async def _heartbeat(runtime: Runtime, run: IngestionRun) -> AsyncIterator[None]:
    """Write the run's heartbeat every `HEARTBEAT_EVERY` while the block runs, each in its own
    short transaction, so a slow fetch is not taken for a run whose process stopped."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
            try:
                async with runtime.transaction() as session:
                    alive = await IngestRepository(session).beat(run.id, runtime.clock.now())
            except Exception:  # the next beat or batch tries again
                log.warning("ingestion_heartbeat_failed", run=str(run.id), exc_info=True)
                continue
            if not alive:  # closed by another process: the next batch's save stops the run
                return

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


async def run_source(
    runtime: Runtime,
    source: SourceConfig,
    *,
    trigger: str,
    file: Path | None = None,
    records: Iterable[RawRecord] | None = None,
    replay_of: uuid.UUID | None = None,
    progress: Progress | None = None,
    http: httpx.AsyncClient | None = None,
    batch_size: int | None = None,
    run_id: uuid.UUID | None = None,
) -> IngestionRun:
    """Run one source end to end (pull sources fetch; `records` feeds given raw records).
    `run_id` continues a run row created earlier (a replay an operator asked for).
    `batch_size` defaults to the database's (`BATCH_SIZES`).

    Raises `Conflict` (run_in_progress) while another run of the source is alive; a replay
    that meets one is closed as failed instead."""
    async with runtime.transaction() as session:
        repo = IngestRepository(session)
        existing = await repo.get_run(run_id) if run_id else None
        try:
            await _claim(session, runtime, source, existing.id if existing else None)
        except Conflict as exc:
            if existing is None:
                raise
            _fail(existing, runtime.clock.now(), exc.message)
            return existing
        run = existing or await repo.add_run(
            new_run(source.slug, trigger, runtime.clock.now(), replay_of)
        )
        run.heartbeat_at = runtime.clock.now()
        state = await IngestRepository(session).state(source.slug)
        model = await active_fraud_model(session)
    since = state.high_water_mark if state else None
    stored_validators = dict(state.validators) if state else {}
    validators = dict(stored_validators)  # the fetcher updates this copy as it goes
    high_water = since
    ceiling = run.started_at + CLOCK_SKEW
    own_http = http is None and records is None and source.type in PULL_SOURCE_TYPES
    client = httpx.AsyncClient(timeout=30.0) if own_http else http

    statistics = Statistics(GROWING_TABLES)

    async def store(
        prepared: Prepared, following: list[RawRecord] | None
    ) -> asyncio.Future[Prepared] | None:
        """Write a prepared batch; return the preparation of the `following` batch, started
        as the batch commits."""
        nonlocal high_water
        ahead = None
        try:
            async with runtime.transaction() as session:
                await lock_key(session, STORE_LOCK)
                pipeline = LeadPipeline(
                    session,
                    source=source,
                    parse=None,
                    markets=runtime.markets,
                    model=model,
                    clock=runtime.clock,
                    run_id=run.id,
                    replay=replay_of is not None,
                    sources=runtime.sources,
                )
                _add(run, await pipeline.store(prepared))
                newest = _high_water(prepared, ceiling)
                if newest and (high_water is None or newest > high_water):
                    high_water = newest
                run.heartbeat_at = runtime.clock.now()
                if not await IngestRepository(session).save_run(run):
                    raise RunClosed(f"run {run.id} was closed by another process")
                await statistics.wrote(session, prepared.fetched)
                # The next batch is prepared while this one commits: SQLite's commit is one
                # long call that lets go of the GIL, so the preparing thread's Python runs
                # beside it (PostgreSQL's commits are short: no gain measured there). It starts
                # no earlier: while statements run, the database driver takes the GIL back
                # between rows and messages, and a busy preparing thread makes it wait a switch
                # interval (5 ms) each time (measured slower on both databases).
                if following is not None:
                    ahead = prepare_soon(preparer.prepare, following)
        except BaseException:
            if ahead is not None:  # the batch failed to commit: the next one is not wanted
                ahead.cancel()
            raise
        if progress is not None:
            progress(prepared.fetched)
        return ahead

    try:
        try:
            wired = wire(source, http=client, clock=runtime.clock, validators=validators, file=file)
        except _SOURCE_ERRORS as exc:  # a configuration the connector cannot work with
            raise SourceFailed(str(exc)) from exc
        preparer = Preparer(source, wired.parse, runtime.markets)
        if records is not None:
            stream: AsyncIterable[RawRecord] = _iterate(records)
        elif wired.fetch is not None:
            stream = wired.fetch(since)
        else:
            raise SourceFailed(
                f"source {source.slug} is push-only: records arrive by webhook or API"
            )
        # Parsing and cleaning run before the batch's transaction opens, off the event loop.
        size = batch_size or BATCH_SIZES.get(runtime.db.dialect, BATCH_SIZE)
        batches = _batches(_guarded(stream), size)
        async with _heartbeat(runtime, run):
            first = await anext(batches, None)
            ahead = prepare_soon(preparer.prepare, first) if first is not None else None
            while ahead is not None:
                prepared = await ahead
                ahead = await store(prepared, await anext(batches, None))
        run.status = RunStatus.SUCCEEDED
    except RunClosed:
        pass  # the final save below finds the run closed and leaves it as it was closed
    except SourceFailed as exc:
        log.warning("ingestion_failed", source=source.slug, error=str(exc))
        _fail(run, runtime.clock.now(), str(exc))
    except Exception as exc:
        # A crash (database gone, a bug): the run says so instead of staying "running".
        # (A cancelled task is left to the stale-run sweep.)
        log.exception("ingestion_crashed", source=source.slug, run=str(run.id))
        _fail(run, runtime.clock.now(), f"crashed: {type(exc).__name__}: {exc}")
        async with runtime.transaction() as session:
            await IngestRepository(session).save_run(run)
        raise
    finally:
        if own_http and client is not None:
            await client.aclose()
    run.finished_at = runtime.clock.now()
    async with runtime.transaction() as session:
        repo = IngestRepository(session)
        if not await repo.save_run(run):
            # Another process took the run for abandoned (and may have started another): its
            # verdict stands, and the sync state is left to the run that replaced this one.
            log.warning("ingestion_run_closed_elsewhere", source=source.slug, run=str(run.id))
            return await repo.get_run(run.id) or run
        if records is None:
            # Validators of pages fetched in a failed run may belong to records never stored
            # (their batch did not commit): the next run must fetch those pages in full again.
            kept = validators if run.status is RunStatus.SUCCEEDED else stored_validators
            await repo.save_state(source.slug, high_water, kept, runtime.clock.now())
    log.info("ingestion_run", source=source.slug, status=run.status.value, **run.counts)
    return run


async def ingest_pushed(
    session: AsyncSession,
    runtime: Runtime,
    source: SourceConfig,
    records: Sequence[RawRecord],
    *,
    trigger: str,
) -> tuple[IngestionRun, BatchCounts]:
    """Ingest records a source sent us (webhook, intake), inside the caller's transaction."""
    await lock_key(session, STORE_LOCK)
    run = await IngestRepository(session).add_run(
        new_run(source.slug, trigger, runtime.clock.now())
    )
    wired = wire(source, clock=runtime.clock)
    pipeline = LeadPipeline(
        session,
        source=source,
        parse=wired.parse,
        markets=runtime.markets,
        model=await active_fraud_model(session),
        clock=runtime.clock,
        run_id=run.id,
        sources=runtime.sources,
    )
    counts = await pipeline.process(records)
    _add(run, counts)
    run.status = RunStatus.SUCCEEDED
    run.finished_at = runtime.clock.now()
    await session.flush()
    return run, counts


async def start_replay(session: AsyncSession, runtime: Runtime, run_id: uuid.UUID) -> IngestionRun:
    """Record a replay of a past run; the `ingest.replay` job carries it out after commit:
    its raw records go through today's pipeline, so records that failed or were quarantined
    get another chance (after a mapping or parser fix) and the others stay unchanged."""
    repo = IngestRepository(session)
    original = await repo.get_run(run_id)
    if original is None:
        raise NotFound("No such ingestion run", code="run_not_found")
    if runtime.sources.get(original.source) is None:
        raise Conflict(f"Source {original.source} is no longer configured", code="source_unknown")
    run = await repo.add_run(new_run(original.source, "replay", runtime.clock.now(), run_id))
    defer_job(session, REPLAY_JOB, {"run_id": str(run.id)})
    return run


async def execute_replay(runtime: Runtime, run_id: uuid.UUID) -> IngestionRun | None:
    async with runtime.transaction(write=False) as session:
        repo = IngestRepository(session)
        run = await repo.get_run(run_id)
        if run is None or run.replay_of is None or run.status is not RunStatus.RUNNING:
            return None
        rows = await repo.run_records(run.replay_of)
    source = runtime.sources.get(run.source)
    if source is None:
        return None
    # Only versions still current: replaying a superseded payload would bring old data back.
    raws = [RawRecord(r.source_key, r.payload, r.source_updated_at) for r in rows if r.current]
    return await run_source(
        runtime, source, trigger="replay", records=raws, replay_of=run.replay_of, run_id=run.id
    )
