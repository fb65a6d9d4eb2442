"""Background jobs of ingestion: scheduled pulls of every enabled source."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
import structlog

from aiqleads.ingest.models import IngestionRun
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.service import (
    GROWING_TABLES,
    REPLAY_JOB,
    abandon,
    execute_replay,
    is_stale,
    run_source,
)
from aiqleads.ingest.sources import PULL_SOURCE_TYPES
from aiqleads.kit.db import defer_job
from aiqleads.kit.dialect import Statistics
from aiqleads.kit.errors import Conflict
from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext

log = structlog.get_logger(__name__)

RUN_SOURCE = "ingest.run_source"


@job(RUN_SOURCE)
async def run_source_job(ctx: JobContext, source: str) -> None:
    """One scheduled run of one source."""
    config = ctx.runtime.sources.get(source)
    if config is not None and config.enabled:
        try:
            await run_source(ctx.runtime, config, trigger="schedule")
        except Conflict:
            log.info("ingestion_skipped", source=source, reason="run_in_progress")


@job("ingest.statistics", every=timedelta(hours=1))
async def refresh_statistics(ctx: JobContext) -> None:
    """Keep SQLite's planner statistics as a store grows between bulk runs (a store fed by
    pushes alone would otherwise keep the statistics of its last bulk run, and searches plan
    by those)."""
    statistics = Statistics(GROWING_TABLES)
    async with ctx.runtime.transaction(write=False) as session:  # SQLite's write lock only
        stale = await statistics.stale(session)  # when there is something to analyse
    if stale:
        async with ctx.transaction() as session:
            await statistics.analyse(session)
        log.info("statistics_refreshed", tables=list(GROWING_TABLES))


@job(REPLAY_JOB)
async def replay_job(ctx: JobContext, run_id: str) -> None:
    """Carry out a replay an operator asked for."""
    await execute_replay(ctx.runtime, uuid.UUID(run_id))


@job("ingest.schedule", every=timedelta(minutes=1))
async def schedule(ctx: JobContext) -> None:
    """Close runs whose process stopped; start a run of every enabled pull source whose
    interval has passed since its last run and that is not running now."""
    now = ctx.runtime.clock.now()
    due = [
        s
        for s in ctx.runtime.sources.all()
        if s.enabled and s.schedule_seconds and s.type in PULL_SOURCE_TYPES
    ]
    async with ctx.transaction() as session:
        live = set()
        for run in await IngestRepository(session).running():
            if is_stale(run, now):
                abandon(run, now)
            else:
                live.add(run.source)
        due = [s for s in due if s.slug not in live]
        if not due:
            return
        rows = await session.execute(
            sa.select(IngestionRun.source, sa.func.max(IngestionRun.started_at))
            .where(IngestionRun.source.in_([s.slug for s in due]))
            .group_by(IngestionRun.source)
        )
        last = {source: started for source, started in rows.all()}
        for source in due:
            previous = last.get(source.slug)
            assert source.schedule_seconds is not None
            if previous is None or now - previous >= timedelta(seconds=source.schedule_seconds):
                defer_job(session, RUN_SOURCE, {"source": source.slug})
