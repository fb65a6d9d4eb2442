"""Ingestion runs: fetch a source in batches, push each batch through the pipeline in its own
transaction, and record what happened. A crash loses at most the batch in flight, and
re-running picks up where the source's high-water mark stands."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
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
from aiqleads.kit.dialect import Statistics
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
# A running run that has written no batch for this long lost its process (a crash, a kill).
STALE_AFTER = timedelta(minutes=15)
REPLAY_JOB = "ingest.replay"
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


async def _guarded(stream: AsyncIterable[RawRecord]) -> AsyncIterator[RawRecord]:
    """The source's records; its errors become `SourceFailed`, told apart from our own."""
    try:
        async for record in stream:
            yield record
    except _SOURCE_ERRORS as exc:
        raise SourceFailed(str(exc)) from exc


def is_stale(run: IngestionRun, now: datetime) -> bool:
    """A running run whose process stopped: no batch written for `STALE_AFTER`."""
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
    validators = dict(state.validators) if state else {}
    high_water = since
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
                newest = prepared.high_water_mark
                if newest and (high_water is None or newest > high_water):
                    high_water = newest
                run.heartbeat_at = runtime.clock.now()
                await _save_run(session, run)
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
        first = await anext(batches, None)
        ahead = prepare_soon(preparer.prepare, first) if first is not None else None
        while ahead is not None:
            prepared = await ahead
            ahead = await store(prepared, await anext(batches, None))
        run.status = RunStatus.SUCCEEDED
    except SourceFailed as exc:
        log.warning("ingestion_failed", source=source.slug, error=str(exc))
        _fail(run, runtime.clock.now(), str(exc))
    except Exception as exc:
        # A crash (database gone, a bug): the run says so instead of staying "running".
        # (A cancelled task is left to the stale-run sweep.)
        log.exception("ingestion_crashed", source=source.slug, run=str(run.id))
        _fail(run, runtime.clock.now(), f"crashed: {type(exc).__name__}: {exc}")
        async with runtime.transaction() as session:
            await _save_run(session, run)
        raise
    finally:
        if own_http and client is not None:
            await client.aclose()
    run.finished_at = runtime.clock.now()
    async with runtime.transaction() as session:
        await _save_run(session, run)
        if records is None:
            await IngestRepository(session).save_state(
                source.slug, high_water, validators, runtime.clock.now()
            )
    log.info("ingestion_run", source=source.slug, status=run.status.value, **run.counts)
    return run


async def _save_run(session: AsyncSession, run: IngestionRun) -> None:
    await session.merge(run)
    await session.flush()


async def ingest_pushed(
    session: AsyncSession,
    runtime: Runtime,
    source: SourceConfig,
    records: Sequence[RawRecord],
    *,
    trigger: str,
) -> tuple[IngestionRun, BatchCounts]:
    """Ingest records a source sent us (webhook, intake), inside the caller's transaction."""
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
