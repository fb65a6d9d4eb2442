"""The HTTP floor of this machine: how fast the cheapest requests can be, closed loop.

    .venv/bin/python bench/http_floor.py --database postgresql --requests 3000

Why: the search and checkout targets are closed-loop figures (20 and 50 clients that send
their next request as soon as the last one is answered). With C clients in flight, the mean
latency is C / throughput (Little's law), and a p95 sits above the mean unless a few requests
are extremely slow, so "p95 <= T at C clients" needs about C / T requests per second: 400
searches/s for 20 clients and 50 ms, 500 checkouts/s for 50 clients and 100 ms. This script
measures, on the same machine, with the same load generator (`_common.load_session`, aiohttp,
in this process; and httpx, which the benchmarks used before, for comparison) and the same
server set-up (uvicorn, one process, on 127.0.0.1) as `search_latency.py` and
`checkout_throughput.py`, requests that do almost nothing:

- `bare`: a Starlette app with one route answering "ok" (no project code): uvicorn and the
  load generator alone;
- `healthz`: the project's app, `GET /healthz` (middleware, no database);
- `me`: the project's app, `GET /api/v1/users/me` with a bearer token (authentication, the
  rate limiter, one user row read, a response model).

No search or checkout can be cheaper than `me`, so its throughput bounds theirs from above.
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

import _common as c

SCENARIOS = {
    "bare": ("bare", "/ok", False),
    "healthz": ("aiqleads", "/healthz", False),
    "me": ("aiqleads", "/api/v1/users/me", True),
}
TARGETS = (("search", 20, 50.0), ("checkout", 50, 100.0))  # (what, clients, p95 target ms)


def serve(app_kind: str, database_url: str, port: int) -> None:
    """The `--serve` mode: one uvicorn process on 127.0.0.1:`port`."""
    import uvicorn

    app: Any
    if app_kind == "bare":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def ok(_request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        async def healthz(_request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        app = Starlette(routes=[Route("/ok", ok), Route("/healthz", healthz)])
    else:
        from aiqleads.app import create_app
        from aiqleads.kit.clock import FrozenClock
        from aiqleads.settings import Settings

        settings = Settings(
            env="test",
            database_url=database_url,
            redis_url=None,
            smtp_url=None,
            log_level="WARNING",
        )
        app = create_app(settings, FrozenClock(c.FROZEN_NOW), run_scheduler=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


@dataclass
class Phase:
    scenario: str
    clients: int
    latencies: list[float] = field(default_factory=list)  # ms
    bad: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else float("nan")


async def drive(
    server: c.Server,
    path: str,
    token: str | None,
    clients: int,
    requests: int,
    scenario: str,
    client_kind: str,
) -> Phase:
    """`requests` GETs of `path` with `clients` in flight, back to back (closed loop), through
    the benchmarks' load generator (`aiohttp`) or through httpx, which they used before."""
    phase = Phase(f"{scenario} ({client_kind})", clients)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    remaining = iter(range(requests))

    if client_kind == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        client: Any = httpx.AsyncClient(
            base_url=server.base_url, headers=headers, limits=limits, timeout=60
        )

        async def one() -> int:
            return (await client.get(path)).status_code

    else:
        client = c.load_session(server.base_url, clients, headers)

        async def one() -> int:
            async with client.get(path) as response:
                await response.read()
                return int(response.status)

    async def client_loop() -> None:
        for _ in remaining:
            t0 = time.perf_counter()
            status = await one()
            phase.latencies.append((time.perf_counter() - t0) * 1e3)
            if status != 200:
                phase.bad += 1

    async with client:
        # Warm the connections and the server's code paths (not measured).
        await asyncio.gather(*(one() for _ in range(clients)))
        cpu0, scpu0, t0 = time.process_time(), server.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(clients)))
        phase.wall = time.perf_counter() - t0
        phase.client_cpu = time.process_time() - cpu0
        phase.server_cpu = server.cpu_seconds() - scpu0
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase")
    parser.add_argument("--clients", default="1,20,50", help="comma-separated client counts")
    parser.add_argument("--pg-admin-url", default=None)
    parser.add_argument("--client", default="httpx,aiohttp", help="load generators to compare")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--app", default="aiqleads", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.app, args.url, args.port)
        return

    c.quiet_logs()
    client_counts = [int(n) for n in args.clients.split(",")]
    db = c.fresh_database(args.database, "http_floor", pg_admin_url=args.pg_admin_url)
    phases: list[Phase] = []
    try:
        database = c.database_version(db)
        for app_kind in ("bare", "aiqleads"):
            server = c.Server.start(
                __file__, ["--app", app_kind, "--url", db.url], f"http_floor_{app_kind}.log"
            )
            try:
                token = None
                if app_kind == "aiqleads":
                    from search_latency import sign_up

                    token = asyncio.run(sign_up(server.base_url, db))
                for scenario, (kind, path, needs_token) in SCENARIOS.items():
                    if kind != app_kind:
                        continue
                    for client_kind in args.client.split(","):
                        for clients in client_counts:
                            phase = asyncio.run(
                                drive(
                                    server,
                                    path,
                                    token if needs_token else None,
                                    clients,
                                    args.requests,
                                    scenario,
                                    client_kind,
                                )
                            )
                            phases.append(phase)
                            print(_row(phase))
            finally:
                server.stop()
    finally:
        db.drop()
    if not args.no_docs:
        report(args, database, phases)


def _row(phase: Phase) -> str:
    v = phase.latencies
    n = len(v)
    return (
        f"{phase.scenario:8} clients={phase.clients:3} n={n} bad={phase.bad} "
        f"rps={phase.throughput:7.0f} p50={c.percentile(v, 50):6.1f} p95={c.percentile(v, 95):6.1f} "
        f"p99={c.percentile(v, 99):6.1f} ms server={phase.server_cpu / n * 1e3:.2f} ms/req "
        f"client={phase.client_cpu / n * 1e3:.2f} ms/req"
    )


def report(args: argparse.Namespace, database: str, phases: list[Phase]) -> None:
    rows = []
    for p in phases:
        n = len(p.latencies)
        rows.append(
            [
                f"`{p.scenario}`",
                p.clients,
                f"{p.throughput:,.0f}",
                f"{c.percentile(p.latencies, 50):.1f}",
                f"{c.percentile(p.latencies, 95):.1f}",
                f"{c.percentile(p.latencies, 99):.1f}",
                f"{p.server_cpu / n * 1e3:.2f}",
                f"{p.client_cpu / n * 1e3:.2f}",
                p.bad,
            ]
        )
    best_me = max(
        (p.throughput for p in phases if p.scenario == "me (aiohttp)"), default=float("nan")
    )
    bounds = [
        [
            what,
            clients,
            f"{target:g} ms",
            f"{clients / (target / 1e3):,.0f}/s",
            f"{best_me:,.0f}/s",
        ]
        for what, clients, target in TARGETS
    ]
    lines = [
        *c.environment_lines([("Database (for `me`)", database)]),
        "",
        f"{args.requests:,} GETs per row, closed loop (each client sends its next request as soon as the last is answered), "
        "one uvicorn process on 127.0.0.1. Load generators: `aiohttp`, the one every HTTP benchmark here uses "
        "(`_common.load_session`), and `httpx.AsyncClient`, which they used before 2026-12-01. CPU columns: the "
        "server's and the load generator's CPU per request (both share the machine's two cores with the database).",
        "",
        *c.table(
            [
                "scenario",
                "clients",
                "requests/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "server CPU ms/req",
                "client CPU ms/req",
                "non-200",
            ],
            rows,
        ),
        "",
        "What the closed-loop targets need (Little's law: mean latency = clients / throughput, and the p95 sits above the mean), "
        "against the best throughput of `me`, the cheapest authenticated request:",
        "",
        *c.table(
            ["target", "clients", "p95 target", "needs at least", "`me` reaches"],
            bounds,
        ),
    ]
    c.write_section(f"http_floor:{args.database}", f"HTTP floor ({args.database})", lines)


if __name__ == "__main__":
    main()
