"""Shared plumbing of the benchmarks in this folder (not part of the test suite).

Each benchmark runs against a fresh database of its own (a SQLite file under /tmp or a new
PostgreSQL database), migrated with `aiqleads.kit.migrate.upgrade`, with a FrozenClock so every
generated timestamp is the same from run to run, and writes its figures into one section of
docs/benchmarks.md (replaced on the next run of the same benchmark and database).
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
# Every generated record is dated relative to this instant (FrozenClock).
FROZEN_NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DIR = Path("/tmp/aiqleads-bench")

_DOC_HEADER = """# Benchmarks

Figures measured by the scripts in `bench/` (never part of the test suite). Each script
prints its figures and replaces its own section below (one per benchmark and database), so
this page always shows the latest run of each. Every run uses a fresh database (a SQLite file
under /tmp, or a new PostgreSQL database dropped afterwards) migrated to head, and a
FrozenClock fixed at 2026-03-02 12:00 UTC so the generated records are the same every run.

| script | what it measures | target |
| --- | --- | --- |
| `bench/dedup_quality.py` | pairwise precision / recall / F1 of de-duplication through the real pipeline on labelled synthetic records | precision >= 0.99, F1 >= 0.97 |
| `bench/pipeline_throughput.py` | end-to-end records/s through `run_source` (generation excluded) | >= 2,000 leads/s on one core |
| `bench/match_latency.py` | incremental match of one new record against N stored leads (key lookup + compare fields + pairwise compare) | p95 <= 20 ms |
| `bench/search_latency.py` | `GET /api/v1/leads/search` over HTTP on 1,000,000 leads, 20 concurrent clients: radius 10 mi + 3 filters + sort; text queries; facet counts | radius search p95 <= 50 ms (PostgreSQL), <= 150 ms (SQLite) |
| `bench/price_recompute.py` | `pricing.service.recompute` over every lead on sale: first run, unchanged, a day later | 1,000,000 leads in <= 60 s |
| `bench/checkout_throughput.py` | `POST /api/v1/checkout` over HTTP, 50 buyers checking out at once (distinct leads), then one buyer alone; the books checked afterwards | >= 300 checkouts/s with p95 <= 100 ms (PostgreSQL) |
| `bench/http_floor.py` | the machine's floor for closed-loop HTTP: a bare Starlette app, `/healthz` and an authenticated `GET /api/v1/users/me` at 1, 20 and 50 clients, with the aiohttp and the httpx load generators | none (context for the two HTTP targets) |

Run them with (each takes the options shown in its `--help`; `--no-docs` leaves this page alone):

    .venv/bin/python bench/dedup_quality.py --count 12000 --seed 7 --database sqlite
    .venv/bin/python bench/pipeline_throughput.py --count 100000 --database postgresql
    .venv/bin/python bench/match_latency.py --stored 1000000 --database postgresql --samples 2000
    .venv/bin/python bench/search_latency.py --leads 1000000 --database postgresql --clients 20 --requests 2000
    .venv/bin/python bench/price_recompute.py --leads 1000000 --database postgresql
    .venv/bin/python bench/checkout_throughput.py --database postgresql --buyers 50 --rounds 20
    .venv/bin/python bench/http_floor.py --database postgresql --requests 5000

PostgreSQL runs create and drop their own database through
`postgresql://postgres@127.0.0.1:5432/postgres` (override with `AIQLEADS_BENCH_PG_ADMIN_URL`).

PostgreSQL server settings for these runs: `shared_buffers=4GB` and `random_page_cost=1.1`
(`ALTER SYSTEM SET ...`, then a restart; see docs/decisions/0006). A fresh machine starts at
the defaults (128 MB, 4), so a section whose header shows them was measured before the
settings were made on that machine.

The sections come from different runs on different 2-core virtual machines, whose speed
varies more than most changes do: with nearly the same code, the SQLite pipeline benchmark
gave 368 records/s on 2026-12-01 (AMD EPYC; generating its records took 7.7 s) and 908 on
2026-12-02 (Intel Xeon; 3.9 s). Each header names the CPU and the date. Compare figures
from one machine; a change is measured against its parent on the same machine (the commit
messages and the issue notes give those A/B figures).
"""


def quiet_logs() -> None:
    """Warnings and errors only: run_source logs a line per run at info level."""
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A fresh, migrated database for one benchmark run."""

    kind: str  # "sqlite" | "postgresql"
    url: str  # SQLAlchemy async URL (what Settings.database_url takes)
    name: str  # file path (SQLite) or database name (PostgreSQL)
    admin_url: str | None = None

    @property
    def asyncpg_dsn(self) -> str:
        """The plain DSN asyncpg.connect takes."""
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def drop(self) -> None:
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.name + suffix).unlink(missing_ok=True)
        else:
            asyncio.run(
                _pg_admin(
                    self.admin_url or PG_ADMIN_DEFAULT,
                    f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)",
                )
            )


async def _pg_admin(admin_url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _database(kind: str, label: str, pg_admin_url: str | None) -> BenchDatabase:
    """Where benchmark `label`'s database lives (nothing is created)."""
    if kind == "sqlite":
        path = str(BENCH_DIR / f"{label}.db")
        return BenchDatabase("sqlite", f"sqlite+aiosqlite:///{path}", path)
    if kind == "postgresql":
        admin = pg_admin_url or os.environ.get("AIQLEADS_BENCH_PG_ADMIN_URL", PG_ADMIN_DEFAULT)
        name = "aiqleads_bench_" + re.sub(r"[^a-z0-9_]", "_", label.lower())
        base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return BenchDatabase("postgresql", f"{base}/{name}", name, admin)
    raise SystemExit(f"unknown database kind {kind!r} (sqlite or postgresql)")


def fresh_database(kind: str, label: str, *, pg_admin_url: str | None = None) -> BenchDatabase:
    """Create (replacing any leftover) and migrate a database for benchmark `label`."""
    from aiqleads.kit.migrate import upgrade

    db = _database(kind, label, pg_admin_url)
    if kind == "sqlite":
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        db.drop()
    else:
        asyncio.run(
            _pg_admin(
                db.admin_url or PG_ADMIN_DEFAULT,
                f"DROP DATABASE IF EXISTS {db.name} WITH (FORCE)",
                f"CREATE DATABASE {db.name}",
            )
        )
    upgrade(db.url)
    return db


def kept_database(kind: str, label: str, *, pg_admin_url: str | None = None) -> BenchDatabase:
    """The database an earlier run of benchmark `label` kept (`--keep`), as it is."""
    db = _database(kind, label, pg_admin_url)
    if kind == "sqlite" and not Path(db.name).exists():
        raise SystemExit(f"no kept database at {db.name}: run once with --keep")
    return db


def database_version(db: BenchDatabase) -> str:
    if db.kind == "sqlite":
        return f"SQLite {sqlite3.sqlite_version} (aiosqlite, WAL, synchronous=NORMAL)"

    async def version() -> str:
        import asyncpg

        conn = await asyncpg.connect(db.asyncpg_dsn)
        try:
            pg = await conn.fetchval("SHOW server_version")
            postgis = await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'postgis'"
            )
            tuned = [
                f"{name}={await conn.fetchval(f'SHOW {name}')}"
                for name in ("shared_buffers", "random_page_cost")
            ]
        finally:
            await conn.close()
        return f"PostgreSQL {pg} + PostGIS {postgis} on 127.0.0.1 (asyncpg; {', '.join(tuned)})"

    return asyncio.run(version())


def make_runtime(db: BenchDatabase) -> Any:
    """A Runtime on `db` with a FrozenClock (no Redis: jobs stay in process)."""
    from aiqleads.kit.clock import FrozenClock
    from aiqleads.runtime import Runtime
    from aiqleads.settings import Settings

    return Runtime(
        Settings(database_url=db.url, env="test", redis_url=None), FrozenClock(FROZEN_NOW)
    )


# --------------------------------------------------------------------------------------------
# The server under test, in processes of its own
# --------------------------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of one process (0 if it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def postgres_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process on this machine so far (backends that
    have exited are not counted: measure across a phase whose connections stay open)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
            except OSError:
                continue
            ticks += _cpu_ticks(int(entry.name))
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A benchmark script run again in `--serve` mode: the app under uvicorn on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @classmethod
    def start(cls, script: str, args: Sequence[str], log_name: str) -> Server:
        """Run `script --serve ARGS --port P` and wait for its /healthz."""
        import httpx

        port = free_port()
        log = BENCH_DIR / log_name
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, script, "--serve", *args, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        server = cls(proc, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: see {log}")
            try:
                if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        server.stop()
        raise SystemExit(f"the server did not come up in 60 s: see {log}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its worker processes so far."""
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        return sum(_cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load_session(base_url: str, clients: int, headers: dict[str, str] | None = None) -> Any:
    """The load generator's HTTP client: an aiohttp session with `clients` keep-alive
    connections (use it as `async with`).

    Not httpx: on this 2-core machine httpx's AsyncClient spends 1.2 ms of CPU per request at
    20 connections and 2.1 ms at 50, against 0.05-0.15 ms for aiohttp, and that CPU is taken
    from the server being measured (`bench/http_floor.py` shows it: a bare "ok" app reaches
    p95 378 ms at 50 clients through httpx, 2.5 ms through aiohttp).
    """
    import aiohttp

    return aiohttp.ClientSession(
        base_url,
        headers=headers or {},
        connector=aiohttp.TCPConnector(limit=clients, limit_per_host=clients),
        timeout=aiohttp.ClientTimeout(total=120),
    )


LOAD_GENERATOR = "aiohttp.ClientSession in the benchmark process (`_common.load_session`)"


# --------------------------------------------------------------------------------------------
# Machine, figures and the docs page
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "uname": uname or " ".join(platform.uname()),
        "cpus": f"{os.cpu_count()} ({usable} usable){', ' + model if model else ''}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPO))
    except ValueError:
        script_text = str(script)
    return " ".join([".venv/bin/python", script_text, *map(shlex.quote, sys.argv[1:])])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def code_version() -> str:
    """The commit measured, and whether src/ had uncommitted changes (others edit it live)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    if not dirty:
        return f"`{head}` (src/ clean)"
    return f"`{head}` + uncommitted changes in " + ", ".join(f"`{d}`" for d in dirty[:6])


def environment_lines(extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The machine, code and command behind a figure (the database is named in `extra`: it is
    dropped by the time the figures are written)."""
    m = machine()
    lines = [
        f"- Machine: `{m['uname']}`",
        f"- CPUs: {m['cpus']}",
        f"- Python: {m['python']}",
        f"- Date: {m['date']}",
        f"- Code: {code_version()}",
    ]
    lines += [f"- {k}: {v}" for k, v in extra]
    lines.append(f"- Command: `{command_line()}`")
    return lines


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_section(key: str, title: str, lines: Sequence[str]) -> None:
    """Replace (or append) the section `key` of docs/benchmarks.md."""
    begin, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    body = "\n".join([begin, f"## {title}", "", *lines, end])
    text = DOCS.read_text("utf-8") if DOCS.exists() else _DOC_HEADER
    # The header (the scripts' table) is kept here: refresh it on every write.
    first = text.find("<!-- bench:")
    text = _DOC_HEADER.rstrip("\n") + "\n\n" + (text[first:] if first >= 0 else "")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: body, text)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text if text.endswith("\n") else text + "\n", "utf-8")
    print(f"\nwrote section {key!r} of {DOCS.relative_to(REPO)}")


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"
