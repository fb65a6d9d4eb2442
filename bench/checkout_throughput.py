"""Checkout throughput over HTTP: `POST /api/v1/checkout` with many buyers at once.

    .venv/bin/python bench/checkout_throughput.py --database postgresql --buyers 50 --rounds 20
    .venv/bin/python bench/checkout_throughput.py --database sqlite --buyers 50 --rounds 20

Load (not timed): the leads of bench/price_recompute.py (available, in the four markets, a
fifth shared), priced once by `pricing.service.recompute`; `--buyers` agents, each granted
enough credits for every round.

Measure: the real app (`create_app`, FrozenClock, no Redis, no periodic jobs, logs at
WARNING, rate limits on) under uvicorn on 127.0.0.1 in a subprocess. Each round, every buyer
first puts a lead of its own in its cart (`POST /cart/items`, not timed), then all buyers
check out at once (`POST /checkout` with an Idempotency-Key), each on its own connection;
distinct leads, so no checkout waits on another's lead. Reported: checkout latency
p50/p95/p99/max, checkouts per second (checkouts / the time the checkout phases took), the CPU
the server spent per checkout; then `--serial` checkouts by one buyer (the service time
without queueing). Afterwards the books are checked: every checkout answered 201, one
purchase per checkout, the ledger reconciles. Target: >= 300 checkouts/s with p95 <= 100 ms
at 50 concurrent buyers on PostgreSQL.
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c
import price_recompute as leads_source


def app_factory() -> Any:
    """The app each server process runs (the database from AIQLEADS_DATABASE_URL)."""
    from aiqleads.app import create_app
    from aiqleads.kit.clock import FrozenClock
    from aiqleads.settings import Settings

    settings = Settings(env="test", redis_url=None, smtp_url=None, log_level="WARNING")
    return create_app(settings, FrozenClock(c.FROZEN_NOW), run_scheduler=False)


def serve(database_url: str, port: int, workers: int) -> None:
    """Run the app under uvicorn on 127.0.0.1:`port` (the `--serve` mode of this script), in
    `workers` processes sharing the port."""
    import uvicorn

    os.environ["AIQLEADS_DATABASE_URL"] = database_url
    sys.path.insert(0, str(Path(__file__).parent))
    uvicorn.run(
        "checkout_throughput:app_factory",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@dataclass
class Phase:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # ms
    statuses: dict[int, int] = field(default_factory=dict)
    wall: float = 0.0  # the checkout phases only
    server_cpu: float = 0.0
    database_cpu: float = 0.0  # PostgreSQL's processes; 0 on SQLite (inside the server)
    client_cpu: float = 0.0  # this load generator's

    @property
    def n(self) -> int:
        return len(self.latencies)

    def stats(self) -> dict[str, float]:
        v = self.latencies
        return {
            "p50": c.percentile(v, 50),
            "p95": c.percentile(v, 95),
            "p99": c.percentile(v, 99),
            "max": max(v) if v else float("nan"),
        }


async def prepare(db: c.BenchDatabase, buyers: int, credits: int) -> tuple[list[str], list[str]]:
    """Price the leads, make the buyers and fund them; returns their tokens and the ids of the
    leads on sale."""
    import sqlalchemy as sa

    from aiqleads.accounts.models import Role, User
    from aiqleads.accounts.schemas import NotificationPreferences
    from aiqleads.accounts.tokens import issue_access_token
    from aiqleads.leads.models import Lead
    from aiqleads.ledger.models import AccountKind, TransactionKind
    from aiqleads.ledger.service import Ledger, Leg
    from aiqleads.pricing.service import recompute

    runtime = c.make_runtime(db)
    try:
        await recompute(runtime)
        now = runtime.clock.now()
        users = [
            User(
                id=uuid.uuid4(),
                email=f"bench-buyer-{i}-{uuid.uuid4().hex[:6]}@agents.example.com",
                name=f"Bench Buyer {i}",
                password_hash="unused",
                role=Role.AGENT,
                plan="basic",
                # The load is the point here: an operator's custom API limit, far above it.
                rate_limit_per_minute=1_000_000,
                preferred_markets=[],
                notification_preferences=NotificationPreferences().model_dump(),
                time_zone="UTC",
                session_version=1,
                email_verified_at=now,
                created_at=now,
                updated_at=now,
            )
            for i in range(buyers)
        ]
        async with runtime.transaction() as session:
            session.add_all(users)
        for user in users:
            async with runtime.transaction() as session:
                ledger = Ledger(session)
                await ledger.post(
                    TransactionKind.GRANT,
                    [
                        Leg(await ledger.account(AccountKind.GRANTS, now), -credits),
                        Leg(await ledger.credits(user.id, now), credits),
                    ],
                    now,
                )
        async with runtime.transaction(write=False) as session:
            on_sale = list(
                await session.scalars(
                    sa.select(Lead.id).where(Lead.status == "available").order_by(Lead.id)
                )
            )
        tokens = [issue_access_token(runtime.settings, u.id, "agent", 1, now) for u in users]
        return tokens, [str(i) for i in on_sale]
    finally:
        await runtime.shutdown()


async def run_rounds(
    server: c.Server, tokens: list[str], leads: list[str], rounds: int, name: str
) -> Phase:
    phase = Phase(name, len(tokens))
    async with c.load_session(server.base_url, len(tokens)) as client:

        async def hold(token: str, lead: str) -> None:
            async with client.post(
                "/api/v1/cart/items",
                json={"lead_id": lead},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                if r.status != 201:
                    raise SystemExit(f"cart add failed: {r.status} {(await r.text())[:300]}")

        async def checkout(token: str) -> None:
            t0 = time.perf_counter()
            async with client.post(
                "/api/v1/checkout",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
            ) as r:
                await r.read()
                status = int(r.status)
            phase.latencies.append((time.perf_counter() - t0) * 1e3)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1

        for _ in range(rounds):
            batch = [leads.pop() for _ in tokens]
            await asyncio.gather(*(hold(t, lead) for t, lead in zip(tokens, batch, strict=True)))
            cpu0, t0 = server.cpu_seconds(), time.perf_counter()
            db0, client0 = c.postgres_cpu_seconds(), time.process_time()
            await asyncio.gather(*(checkout(t) for t in tokens))
            phase.wall += time.perf_counter() - t0
            phase.server_cpu += server.cpu_seconds() - cpu0
            phase.database_cpu += c.postgres_cpu_seconds() - db0
            phase.client_cpu += time.process_time() - client0
    return phase


async def check_books(db: c.BenchDatabase) -> tuple[int, list[Any]]:
    import sqlalchemy as sa

    from aiqleads.checkout.models import Purchase
    from aiqleads.ledger.service import Ledger

    runtime = c.make_runtime(db)
    try:
        async with runtime.transaction(write=False) as session:
            purchases = int(
                await session.scalar(sa.select(sa.func.count()).select_from(Purchase)) or 0
            )
            mismatches = await Ledger(session).reconcile()
        return purchases, mismatches
    finally:
        await runtime.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--buyers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="rounds not counted")
    parser.add_argument("--serial", type=int, default=100, help="checkouts by one buyer")
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers)
        return
    c.quiet_logs()
    needed = args.buyers * (args.rounds + args.warmup) + args.serial
    if needed > args.leads * 0.8:
        raise SystemExit(f"--leads {args.leads} is too few for {needed} checkouts")

    db = c.fresh_database(args.database, "checkout_throughput")
    server = None
    try:
        leads = leads_source.lead_rows(args.leads, args.seed)
        if db.kind == "postgresql":
            asyncio.run(leads_source.load_postgres(db, leads, []))
        else:
            leads_source.load_sqlite(db, leads, [])
        tokens, on_sale = asyncio.run(prepare(db, args.buyers + 1, 10_000_000))
        print(f"{args.leads:,} leads loaded and priced, {args.buyers} buyers funded")
        server = c.Server.start(
            __file__, [db.url, "--workers", str(args.workers)], f"checkout_server_{db.kind}.log"
        )
        crowd, solo = tokens[:-1], tokens[-1:]
        if args.warmup:
            asyncio.run(run_rounds(server, crowd, on_sale, args.warmup, "warm-up"))
        concurrent = asyncio.run(run_rounds(server, crowd, on_sale, args.rounds, "concurrent"))
        serial = asyncio.run(run_rounds(server, solo, on_sale, args.serial, "serial"))
        server.stop()
        server = None
        purchases, mismatches = asyncio.run(check_books(db))
        version = c.database_version(db)
    finally:
        if server is not None:
            server.stop()
        db.drop()

    expected = args.buyers * (args.rounds + args.warmup) + args.serial
    all_201 = concurrent.statuses == {201: concurrent.n} and serial.statuses == {201: serial.n}
    books = purchases == expected and not mismatches
    rows = []
    for phase in (concurrent, serial):
        s = phase.stats()
        rows.append(
            (
                f"{phase.name} ({phase.concurrency} buyer{'s' if phase.concurrency > 1 else ''})",
                f"{phase.n:,}",
                f"{s['p50']:.1f}",
                f"{s['p95']:.1f}",
                f"{s['p99']:.1f}",
                f"{s['max']:.1f}",
                f"{phase.n / phase.wall:,.0f}",
                f"{phase.server_cpu / phase.n * 1e3:.1f}",
                f"{phase.database_cpu / phase.n * 1e3:.1f}" if db.kind == "postgresql" else "-",
                f"{phase.client_cpu / phase.n * 1e3:.1f}",
            )
        )
    rate = concurrent.n / concurrent.wall
    p95 = concurrent.stats()["p95"]
    ok = rate >= 300 and p95 <= 100
    lines = c.environment_lines([("Database", version)])
    lines += [
        "",
        f"{args.leads:,} leads on sale, priced; {args.buyers} funded buyers; {args.workers} server "
        f"process{'es' if args.workers > 1 else ''}. Each round every buyer holds one lead of "
        "its own (not timed), then all check out at once. CPU columns: the API server's, "
        "PostgreSQL's and the load generator's, per checkout; the three share the machine's "
        "cores.",
        "",
        *c.table(
            (
                "phase",
                "checkouts",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "checkouts/s",
                "server CPU ms/checkout",
                "database CPU ms/checkout",
                "load generator CPU ms/checkout",
            ),
            rows,
        ),
        "",
        f"Books: {purchases:,} purchases for {expected:,} checkouts, ledger mismatches: {len(mismatches)}, "
        f"every answer 201: {'yes' if all_201 else 'no: ' + str(concurrent.statuses) + str(serial.statuses)}.",
        "",
        f"Target (PostgreSQL): >= 300 checkouts/s with p95 <= 100 ms at 50 concurrent buyers: "
        f"{c.verdict(ok)} ({rate:,.0f}/s, p95 {p95:.0f} ms).",
    ]
    print("\n".join(lines))
    if not (all_201 and books):
        raise SystemExit("the books do not add up: see above")
    if not args.no_docs:
        suffix = f":{args.workers}w" if args.workers > 1 else ""
        c.write_section(
            f"checkout_throughput:{args.database}{suffix}",
            f"Checkout throughput ({args.database}, {args.workers} server process"
            f"{'es' if args.workers > 1 else ''})",
            lines,
        )


if __name__ == "__main__":
    main()
