"""End-to-end ingestion throughput: generated records through `run_source`, records per second.

    .venv/bin/python bench/pipeline_throughput.py --count 100000 --database postgresql
    .venv/bin/python bench/pipeline_throughput.py --count 20000 --database sqlite

The records (`synthetic.generate`, default fraud and duplicate rates) are generated first and
not timed. They are grouped by source and each source is run with `run_source(records=...)`
in `DEMO_SOURCES` order (batches of `ingest.service.BATCH_SIZES`: 500 on SQLite, 2,000 on
PostgreSQL; one transaction each), into a fresh database; the
clock covers those runs only. Figures:

* records/s overall and per source run, and per batch over the run (does it slow down as the
  store grows?);
* time per pipeline stage, from timers wrapped around `LeadPipeline`'s stage methods (in this
  process only; src/ is unchanged) and around `AsyncSession.execute` / `commit` (SQL time);
* with `--profile-sample N` (default 5000), a second ingest of N records into another fresh
  database under cProfile: the top 25 functions by cumulative time go to the console, the
  full profile to /tmp/aiqleads-bench/pipeline_<db>.prof.

Target: >= 2,000 leads (records) per second on one core.
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import _common as c
from aiqleads.ingest import pipeline as pipeline_module
from aiqleads.ingest import service as service_module
from aiqleads.ingest import synthetic
from aiqleads.ingest.pipeline import LeadPipeline, Preparer
from aiqleads.ingest.service import BATCH_SIZE, BATCH_SIZES, run_source
from aiqleads.kit import heap
from aiqleads.leads.models import Lead

TARGET = 2_000.0

# --------------------------------------------------------------------------------------------
# Stage timers (monkeypatched in this process only)
# --------------------------------------------------------------------------------------------

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
# (class, method, label); "clean" is the module function the preparer calls.
STAGES: tuple[tuple[Any, str, str], ...] = (
    (Preparer, "prepare", "A prepare, on the preparing thread: hash, parse, clean, keys"),
    (None, "clean", "   of which: `clean()`"),
    (LeadPipeline, "store", "B store, on the event loop: match, score, write"),
    (LeadPipeline, "_new_items", "   existing-record lookup"),
    (LeadPipeline, "_resolve", "   resolve: key lookup, compare, attach"),
    (LeadPipeline, "_load_existing_contributions", "      of which: existing leads' records"),
    (LeadPipeline, "_score", "   survivorship + fraud + quality scores"),
    (LeadPipeline, "_persist", "   persist: insert/update leads, keys, records"),
)


def _timed_async(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - t0
            CALLS[name] += 1

    return wrapper


def _timed_sync(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - t0
            CALLS[name] += 1

    return wrapper


_ORIGINALS: dict[str, Any] = {}
_GC_START: list[float] = [0.0]


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    """Time spent in the cyclic garbage collector (it runs inside whatever allocates)."""
    if phase == "start":
        _GC_START[0] = time.perf_counter()
    else:
        TIMES[f"gc_gen{info.get('generation', '?')}"] += time.perf_counter() - _GC_START[0]
        CALLS[f"gc_gen{info.get('generation', '?')}"] += 1


class _AwaitTimed:
    """A batch being prepared ahead (`service.prepare_soon`), timing how long the event loop
    waits for it: the part of preparing that did not overlap the previous batch's commit."""

    def __init__(self, future: Any) -> None:
        self.future = future

    def __await__(self) -> Any:
        t0 = time.perf_counter()
        try:
            return (yield from self.future.__await__())
        finally:
            TIMES["prepare_wait"] += time.perf_counter() - t0

    def cancel(self) -> bool:
        return bool(self.future.cancel())


def instrument() -> None:
    for owner, name, _ in STAGES:
        if owner is None:
            continue
        original = getattr(owner, name)
        _ORIGINALS[name] = original
        wrap = _timed_sync if owner is Preparer else _timed_async
        setattr(owner, name, wrap(name, original))
    _ORIGINALS["clean"] = pipeline_module.clean
    pipeline_module.clean = _timed_sync("clean", pipeline_module.clean)  # type: ignore[assignment]
    _ORIGINALS["prepare_soon"] = service_module.prepare_soon
    service_module.prepare_soon = lambda *a: _AwaitTimed(_ORIGINALS["prepare_soon"](*a))  # type: ignore[assignment]
    _ORIGINALS["execute"] = AsyncSession.execute
    AsyncSession.execute = _timed_async("sql_execute", AsyncSession.execute)  # type: ignore[method-assign]
    _ORIGINALS["commit"] = AsyncSession.commit
    AsyncSession.commit = _timed_async("sql_commit", AsyncSession.commit)  # type: ignore[method-assign]
    gc.callbacks.append(_gc_callback)


def uninstrument() -> None:
    gc.callbacks.remove(_gc_callback)
    for owner, name, _ in STAGES:
        if owner is not None:
            setattr(owner, name, _ORIGINALS[name])
    pipeline_module.clean = _ORIGINALS["clean"]
    service_module.prepare_soon = _ORIGINALS["prepare_soon"]
    AsyncSession.execute = _ORIGINALS["execute"]  # type: ignore[method-assign]
    AsyncSession.commit = _ORIGINALS["commit"]  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------------


async def ingest(
    runtime: Any, records: list[synthetic.SyntheticRecord], *, verbose: bool = True
) -> dict[str, Any]:
    by_source: dict[str, list[Any]] = defaultdict(list)
    for rec in records:
        by_source[rec.source].append(rec.record)
    per_source: list[tuple[str, int, float, dict[str, int]]] = []
    batches: list[tuple[int, float]] = []  # (records, seconds) per batch, in order
    last = [0.0]

    def progress(n: int) -> None:
        now = time.perf_counter()
        batches.append((n, now - last[0]))
        last[0] = now

    start = time.perf_counter()
    for slug in synthetic.DEMO_SOURCES:
        source = runtime.sources.get(slug)
        if source is None or not by_source[slug]:
            continue
        t0 = last[0] = time.perf_counter()
        run = await run_source(
            runtime, source, trigger="bench", records=by_source[slug], progress=progress
        )
        seconds = time.perf_counter() - t0
        per_source.append((slug, len(by_source[slug]), seconds, dict(run.counts)))
        if verbose:
            print(
                f"  {slug:<14} {len(by_source[slug]):>7,} records {seconds:8.1f} s "
                f"{len(by_source[slug]) / seconds:7.0f} rec/s  {run.status.value} {run.counts}"
            )
    total = time.perf_counter() - start
    async with runtime.transaction(write=False) as session:
        leads = int(
            (await session.execute(sa.select(sa.func.count()).select_from(Lead))).scalar_one()
        )
    return {"seconds": total, "per_source": per_source, "batches": batches, "leads": leads}


def profile_sample(args: argparse.Namespace) -> tuple[str, list[list[str]]]:
    """Ingest a sample under cProfile into a fresh database: the console text, and the top
    project functions by cumulative time (for the docs)."""
    records = synthetic.generate(args.profile_sample, seed=args.seed, now=c.FROZEN_NOW)
    db = c.fresh_database(args.database, f"pipeline_profile_{args.database}")
    runtime = c.make_runtime(db)
    profiler = cProfile.Profile()

    async def run() -> dict[str, Any]:
        try:
            profiler.enable()
            result = await ingest(runtime, records, verbose=False)
            profiler.disable()
            return result
        finally:
            await runtime.shutdown()

    try:
        result = asyncio.run(run())
    finally:
        if not args.keep:
            db.drop()
    folder = Path("/tmp/aiqleads-bench")
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / f"pipeline_{args.database}.prof")
    profiler.dump_stats(path)
    out = io.StringIO()
    out.write(
        f"cProfile of {args.profile_sample:,} records ({result['seconds']:.1f} s under the "
        f"profiler, {args.profile_sample / result['seconds']:.0f} rec/s); full profile: {path}\n"
        "(coroutine call counts include every resumption)\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    out.write("\n--- top 25 by cumulative time, all functions ---\n")
    stats.sort_stats("cumulative").print_stats(25)
    out.write("\n--- top 25 by cumulative time, project code only (src/aiqleads) ---\n")
    stats.sort_stats("cumulative").print_stats(r"/aiqleads/", 25)
    out.write("\n--- top 20 by own time (tottime) ---\n")
    stats.sort_stats("tottime").print_stats(20)
    # The project's heaviest functions, for the docs.
    total = result["seconds"]
    top: list[list[str]] = []
    raw = stats.stats  # type: ignore[attr-defined]
    own = [
        (ct, f"{fn.split('/src/', 1)[-1]}:{line} `{name}`")
        for (fn, line, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
        if "/src/aiqleads/" in fn
        and name not in ("run_source", "process", "<listcomp>", "<genexpr>")
    ]
    for ct, label in sorted(own, reverse=True)[:12]:
        top.append([label, f"{ct:.1f}", f"{100 * ct / total:.0f}%"])
    return out.getvalue(), top


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--profile-sample", type=int, default=5_000, help="records to profile (0: no profile)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    c.quiet_logs()

    print(f"generating {args.count:,} records (seed {args.seed}, default rates) ...")
    t0 = time.perf_counter()
    records = synthetic.generate(args.count, seed=args.seed, now=c.FROZEN_NOW)
    gen_s = time.perf_counter() - t0
    print(f"  {gen_s:.1f} s ({args.count / gen_s:,.0f} records/s; not counted below)")

    # The generated records stand in for a feed read as it goes; holding all of them in memory
    # is the benchmark's doing, so keep them out of the cyclic collector's full passes. The
    # collector's thresholds are the ones a runtime sets at start-up (kit.heap).
    heap.freeze()
    db = c.fresh_database(args.database, f"pipeline_throughput_{args.database}")
    db_version = c.database_version(db)
    runtime = c.make_runtime(db)
    instrument()

    async def run() -> dict[str, Any]:
        try:
            print(f"ingesting through run_source into {db.kind} ({db.name}) ...")
            return await ingest(runtime, records)
        finally:
            await runtime.shutdown()

    try:
        result = asyncio.run(run())
    finally:
        uninstrument()
        if not args.keep:
            db.drop()

    total = result["seconds"]
    rate = args.count / total
    ok = rate >= TARGET
    batches = result["batches"]
    tenth = max(1, len(batches) // 10)

    def batch_rate(part: list[tuple[int, float]]) -> float:
        return sum(n for n, _ in part) / sum(s for _, s in part) if part else float("nan")

    first_rate, last_rate = batch_rate(batches[:tenth]), batch_rate(batches[-tenth:])
    stage_rows = []
    for _, name, label in STAGES:
        stage_rows.append(
            [
                label,
                f"{TIMES[name]:.1f}",
                f"{100 * TIMES[name] / total:.1f}%",
                f"{1e3 * TIMES[name] / args.count:.3f}",
            ]
        )
    stage_rows.insert(
        2,
        [
            "   of which the event loop waited for (the rest overlapped a commit)",
            f"{TIMES['prepare_wait']:.1f}",
            f"{100 * TIMES['prepare_wait'] / total:.1f}%",
            f"{1e3 * TIMES['prepare_wait'] / args.count:.3f}",
        ],
    )
    outside = total - TIMES["store"] - TIMES["prepare_wait"]
    stage_rows.append(
        [
            "C outside A and B: run rows, commits, batching",
            f"{outside:.1f}",
            f"{100 * outside / total:.1f}%",
            f"{1e3 * outside / args.count:.3f}",
        ]
    )
    sql_rows = [
        [
            "`AsyncSession.execute` (all SQL, incl. SQLAlchemy compile + driver)",
            f"{TIMES['sql_execute']:.1f}",
            f"{100 * TIMES['sql_execute'] / total:.1f}%",
            f"{CALLS['sql_execute']:,}",
        ],
        [
            "`AsyncSession.commit`",
            f"{TIMES['sql_commit']:.1f}",
            f"{100 * TIMES['sql_commit'] / total:.1f}%",
            f"{CALLS['sql_commit']:,}",
        ],
    ]
    for gen in (0, 1, 2):
        key = f"gc_gen{gen}"
        sql_rows.append(
            [
                f"cyclic GC, generation {gen} (inside any stage)",
                f"{TIMES[key]:.1f}",
                f"{100 * TIMES[key] / total:.1f}%",
                f"{CALLS[key]:,}",
            ]
        )

    print()
    print(f"records {args.count:,}  leads created {result['leads']:,}  time {total:.1f} s")
    print(
        f"THROUGHPUT {rate:,.0f} records/s ({result['leads'] / total:,.0f} leads created/s); "
        f"target >= {TARGET:,.0f}/s: {'PASS' if ok else 'MISS'}"
    )
    print(
        f"per batch: first 10% of batches {first_rate:,.0f} rec/s, last 10% {last_rate:,.0f} rec/s"
    )
    print("\nstage                                              seconds   share   ms/record")
    for row in stage_rows:
        print(f"  {row[0]:<48} {row[1]:>7} {row[2]:>7} {row[3]:>9}")
    for row in sql_rows:
        print(f"  {row[0][:60]:<60} {row[1]:>7} {row[2]:>7} calls={row[3]}")

    profile_top: list[list[str]] = []
    if args.profile_sample > 0:
        print(f"\nprofiling {args.profile_sample:,} records (fresh {args.database} database) ...")
        profile_text, profile_top = profile_sample(args)
        print(profile_text)

    if args.no_docs:
        return
    lines = c.environment_lines([("Database", db_version)])
    lines += [
        "",
        f"{args.count:,} records from `synthetic.generate({args.count}, seed={args.seed})` "
        f"(default fraud and duplicate rates; generation {gen_s:.1f} s, not counted), grouped by "
        "source, one `run_source(records=...)` per source in `DEMO_SOURCES` order, batches of "
        f"{BATCH_SIZES.get(args.database, BATCH_SIZE):,}, one process: each batch is parsed "
        "and cleaned on the preparing thread (while the batch before it commits), then "
        "matched, scored and written on the event loop in its own transaction (one core of "
        "Python; the database works beside it: SQLite's C library in aiosqlite's thread, "
        "PostgreSQL in its server).",
        "",
        *c.table(
            ["figure", "value"],
            [
                ["records/s (end to end)", f"**{rate:,.0f}**"],
                ["leads created/s", f"{result['leads'] / total:,.0f} ({result['leads']:,} leads)"],
                ["wall time", f"{total:.1f} s"],
                [
                    "rate over the first / last 10% of batches",
                    f"{first_rate:,.0f} / {last_rate:,.0f} rec/s",
                ],
            ],
        ),
        "",
        f"Target: >= {TARGET:,.0f} leads/s on one core: {c.verdict(ok)} "
        f"({rate / TARGET:.0%} of target).",
        "",
        *c.table(
            ["source run", "records", "seconds", "records/s"],
            [
                [s, f"{n:,}", f"{sec:.1f}", f"{n / sec:,.0f}"]
                for s, n, sec, _ in result["per_source"]
            ],
        ),
        "",
        "Time per stage (timers wrapped around `Preparer` and `LeadPipeline` methods in the "
        "benchmark process; B, C and the wait for A run one after the other, and the rest "
        "of A runs on the preparing thread while the previous batch commits):",
        "",
        *c.table(["stage", "seconds", "share of wall time", "ms per record"], stage_rows),
        "",
        *c.table(["SQL and GC", "seconds", "share of wall time", "calls"], sql_rows),
    ]
    if profile_top:
        lines += [
            "",
            f"Heaviest project functions under cProfile ({args.profile_sample:,} records into a "
            "fresh database; cumulative seconds, nested functions overlap; the full listing is "
            "printed by the script):",
            "",
            *c.table(["function", "cumulative s", "share of profiled run"], profile_top),
        ]
    c.write_section(
        f"pipeline_throughput:{args.database}", f"Pipeline throughput ({args.database})", lines
    )


if __name__ == "__main__":
    main()
