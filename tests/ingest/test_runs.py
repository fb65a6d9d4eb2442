"""Run bookkeeping: one live run per source, abandoned and crashed runs closed, never left
"running" for ever."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiqleads.ingest.models import IngestionRun, RunStatus, SourceRecord
from aiqleads.ingest.pipeline import LeadPipeline
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.service import GROWING_TABLES, new_run, run_source
from aiqleads.ingest.sources import SourceCatalog, SourceConfig
from aiqleads.ingest.tasks import refresh_statistics, schedule
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.dialect import Statistics
from aiqleads.kit.errors import Conflict
from aiqleads.runtime import JobContext, Runtime
from tests.ingest.factories import seller

MLS = SourceConfig(slug="test-mls", name="Test MLS", type="demo", trust=0.9)
RESO = SourceConfig(
    slug="test-reso",
    name="Test RESO",
    type="reso",
    trust=0.9,
    schedule_seconds=900,
    options={"base_url": "http://127.0.0.1:9/reso"},
)


async def running_run(runtime: Runtime, source: str, **changes: object) -> IngestionRun:
    """A run another process has under way (its heartbeat is now)."""
    run = new_run(source, "cli", runtime.clock.now())
    run.heartbeat_at = runtime.clock.now()
    for name, value in changes.items():
        setattr(run, name, value)
    async with runtime.transaction() as session:
        await IngestRepository(session).add_run(run)
    return run


async def get_run(runtime: Runtime, run: IngestionRun) -> IngestionRun:
    async with runtime.transaction(write=False) as session:
        found = await IngestRepository(session).get_run(run.id)
    assert found is not None
    return found


async def test_a_source_runs_once_at_a_time(runtime: Runtime, clock: FrozenClock) -> None:
    other = await running_run(runtime, MLS.slug)
    with pytest.raises(Conflict) as refused:
        await run_source(runtime, MLS, trigger="cli", records=[seller("L1")])
    assert refused.value.code == "run_in_progress"
    assert str(other.id) in refused.value.message

    # The other process died: after 15 minutes without a batch its run is closed as abandoned.
    clock.advance(timedelta(minutes=16))
    run = await run_source(runtime, MLS, trigger="cli", records=[seller("L1")])
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["accepted"] == 1
    abandoned = await get_run(runtime, other)
    assert abandoned.status is RunStatus.FAILED
    assert abandoned.finished_at == clock.now()
    assert abandoned.errors[0].startswith("abandoned: no progress since")


async def test_the_scheduler_closes_abandoned_runs_and_leaves_live_sources_alone(
    runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.sources = SourceCatalog([RESO])
    live = await running_run(runtime, RESO.slug)
    dead = await running_run(runtime, MLS.slug, heartbeat_at=clock.now() - timedelta(hours=2))
    await schedule.fn(JobContext(runtime))
    await runtime.jobs.wait_idle()
    async with runtime.transaction(write=False) as session:
        runs = list(await session.scalars(sa.select(IngestionRun)))
    assert {r.id for r in runs} == {live.id, dead.id}  # no second run of the live source
    assert (await get_run(runtime, live)).status is RunStatus.RUNNING
    closed = await get_run(runtime, dead)
    assert closed.status is RunStatus.FAILED
    assert "abandoned" in closed.errors[0]


async def test_a_crash_mid_run_is_recorded_on_the_run(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: LeadPipeline, prepared: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(LeadPipeline, "store", broken)
    with pytest.raises(RuntimeError):
        await run_source(runtime, MLS, trigger="cli", records=[seller("L1")])
    async with runtime.transaction(write=False) as session:
        [run] = list(await session.scalars(sa.select(IngestionRun)))
    assert run.status is RunStatus.FAILED
    assert run.finished_at is not None
    assert run.errors == ["crashed: RuntimeError: database went away"]
    # The source is free again: the next run is not refused.
    monkeypatch.undo()
    again = await run_source(runtime, MLS, trigger="cli", records=[seller("L1")])
    assert again.status is RunStatus.SUCCEEDED


async def test_a_crash_keeps_the_batches_before_it_and_drops_the_one_prepared_ahead(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of two: the second batch's write fails while the third is being prepared.
    original = LeadPipeline.store
    calls = 0

    async def fails_second(self: LeadPipeline, prepared: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away")
        return await original(self, prepared)

    monkeypatch.setattr(LeadPipeline, "store", fails_second)
    records = [seller(f"L{i}") for i in range(1, 6)]
    with pytest.raises(RuntimeError):
        await run_source(runtime, MLS, trigger="cli", records=records, batch_size=2)
    async with runtime.transaction(write=False) as session:
        stored = set(await session.scalars(sa.select(SourceRecord.source_key)))
        [run] = list(await session.scalars(sa.select(IngestionRun)))
    assert stored == {"L1", "L2"}
    assert run.status is RunStatus.FAILED
    assert run.counts["fetched"] == 2
    monkeypatch.undo()
    again = await run_source(runtime, MLS, trigger="cli", records=records, batch_size=2)
    assert again.status is RunStatus.SUCCEEDED
    assert again.counts["unchanged"] == 2
    assert again.counts["fetched"] == 5


async def test_a_replay_that_meets_a_live_run_is_closed_not_left_running(
    runtime: Runtime,
) -> None:
    first = await run_source(runtime, MLS, trigger="cli", records=[seller("L1")])
    await running_run(runtime, MLS.slug)
    replay = await running_run(runtime, MLS.slug, trigger="replay", replay_of=first.id)
    result = await run_source(
        runtime, MLS, trigger="replay", records=[], replay_of=first.id, run_id=replay.id
    )
    assert result.status is RunStatus.FAILED
    stored = await get_run(runtime, replay)
    assert stored.status is RunStatus.FAILED
    assert "is being ingested by run" in stored.errors[0]


async def test_a_bulk_load_keeps_its_lookup_tables_analysed(runtime: Runtime) -> None:
    # Without statistics PostgreSQL plans the per-batch key lookup as a scan of every record
    # of the source, and SQLite walks any index that starts with an equality (every lead on
    # sale) before a range; a run analyses the tables it grows.
    batch = [seller(f"L{i}", phone=None, email=f"owner{i}@example.com") for i in range(1_200)]
    run = await run_source(runtime, MLS, trigger="test", records=batch)
    assert run.counts["fetched"] == 1_200
    async with runtime.transaction(write=False) as session:
        if session.get_bind().dialect.name == "sqlite":
            counted: dict[str, int] = {}
            for table, stat in await session.execute(
                sa.text("SELECT tbl, stat FROM sqlite_stat1")
            ):  # a row per index, starting with how many rows it holds
                counted[table] = max(counted.get(table, 0), int(stat.split()[0]))
            assert {"source_records", "leads", "lead_match_keys"} <= set(counted)
            assert counted["source_records"] >= 1_000
            # Another 1,000 rows are not enough to analyse again (1,000 + 20 % of what is there).
            statistics = Statistics(GROWING_TABLES)
            assert not await statistics.wrote(session, 1_000)
            return
        analysed = await session.scalar(
            sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'source_records'")
        )
        plan = "\n".join(
            await session.scalars(
                sa.text(
                    "EXPLAIN SELECT * FROM source_records WHERE source = 'test-mls' "
                    "AND source_key IN ('L1', 'L2') AND current IS TRUE"
                )
            )
        )
    assert analysed is not None
    assert "source_key" in plan.split("Index Cond", 1)[-1]


async def test_a_store_fed_a_little_at_a_time_is_analysed_by_the_hourly_job(
    runtime: Runtime,
) -> None:
    """Records that arrive by webhook, intake or small runs are written a few at a time, and
    no run writes enough to analyse; the `ingest.statistics` job counts the rows and analyses
    SQLite once the records have grown by 1,000 plus 20 % since the last analysis.
    (PostgreSQL's autovacuum does this itself: the job leaves it alone.)"""

    async def analysed() -> dict[str, int]:
        async with runtime.transaction(write=False) as session:
            if not await session.scalar(
                sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            ):
                return {}
            rows = await session.execute(sa.text("SELECT tbl, stat FROM sqlite_stat1"))
            counted: dict[str, int] = {}
            for table, stat in rows:  # a row per index, starting with the table's rows
                counted[table] = max(counted.get(table, 0), int(stat.split()[0]))
            return counted

    sqlite = runtime.db.dialect == "sqlite"
    for n in range(11):  # eleven small runs: none analyses on its own
        records = [
            seller(f"S{n}-{i}", phone=None, email=f"o{n}-{i}@example.com") for i in range(100)
        ]
        await run_source(runtime, MLS, trigger="test", records=records)
    before = await analysed() if sqlite else {}
    await refresh_statistics.fn(JobContext(runtime))
    after = await analysed() if sqlite else {}
    await run_source(runtime, MLS, trigger="test", records=[seller("T1"), seller("T2")])
    async with runtime.transaction(write=False) as session:
        again = await Statistics(GROWING_TABLES).stale(session)
    assert not again  # two more records are not enough (PostgreSQL: never the job's work)
    if sqlite:
        assert before.get("source_records", 0) < 1_100
        assert after["source_records"] == 1_100  # analysed: the planner knows them now
        assert (await analysed())["source_records"] == 1_100


async def test_a_source_its_connector_cannot_use_fails_the_run_cleanly(runtime: Runtime) -> None:
    unmapped = SourceConfig(slug="test-csv", name="CSV without a mapping", type="csv", trust=0.5)
    run = await run_source(runtime, unmapped, trigger="cli")
    assert run.status is RunStatus.FAILED
    assert run.finished_at is not None
    assert "no column mapping" in run.errors[0]


CSV_SOURCE = SourceConfig(
    slug="test-csv",
    name="CSV export",
    type="csv",
    trust=0.8,
    options={
        "key_column": "MLS #",
        "columns": {"full_name": "Owner", "phone": "Phone", "street": "Address", "city": "City"}
        | {"state": "ST", "postal_code": "Zip", "list_price": "Price"},
    },
)
CSV_HEADER = "MLS #,Owner,Phone,Address,City,ST,Zip,Price\n"
CSV_ROWS = [
    "LV-1,Robert Johnson,(702) 555-0143,4500 W Sahara Ave,Las Vegas,NV,89102,$425K\n",
    'LV-2,Ana Lopez,702-555-0188,12 Oak St,Las Vegas,NV,89102,"410,000"\n',
    "LV-3,Maria Garcia,702-555-0177,100 S Main St,Las Vegas,NV,89101,$300K\n",
]


async def test_a_csv_export_with_a_row_more_on_top_stores_only_that_row(
    runtime: Runtime, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(CSV_HEADER + "".join(CSV_ROWS[1:]))
    first = await run_source(runtime, CSV_SOURCE, trigger="test", file=export)
    assert first.counts["accepted"] == 2
    export.write_text(CSV_HEADER + "".join(CSV_ROWS))  # the next day's export
    second = await run_source(runtime, CSV_SOURCE, trigger="test", file=export)
    assert (second.counts["accepted"], second.counts["unchanged"]) == (1, 2)
    assert second.counts["updated"] == 0


async def test_a_csv_field_beyond_the_readers_limit_fails_only_its_row(
    runtime: Runtime, tmp_path: Path
) -> None:
    huge = 'LV-9,"' + "x" * 200_000 + '",,,,,,\n'
    export = tmp_path / "export.csv"
    export.write_text(CSV_HEADER + CSV_ROWS[0] + huge + CSV_ROWS[1])
    run = await run_source(runtime, CSV_SOURCE, trigger="test", file=export)
    assert run.status is RunStatus.SUCCEEDED
    assert (run.counts["accepted"], run.counts["failed"]) == (2, 1)
    async with runtime.transaction(write=False) as session:
        failed = await session.scalar(
            sa.select(SourceRecord).where(SourceRecord.source_key == "line:3")
        )
    assert failed is not None
    assert [p["code"] for p in failed.problems] == ["malformed_row"]
    assert "field larger than field limit" in failed.problems[0]["message"]
