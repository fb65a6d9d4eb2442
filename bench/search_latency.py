"""Marketplace search latency over HTTP: `GET /api/v1/leads/search` on N leads.

    .venv/bin/python bench/search_latency.py --leads 1000000 --database postgresql --clients 20 --requests 2000 --keep
    .venv/bin/python bench/search_latency.py --leads 1000000 --database sqlite --clients 20 --requests 2000 --keep
    .venv/bin/python bench/search_latency.py --database postgresql --reuse   # measure a kept store again

Load (timed and reported separately): the bulk path of bench/_leads.py. Records stream from
`synthetic.iter_generate(..., fraud_rate=0, duplicate_rate=0)` (one record per person, ~5 %
households; the four markets by their weights, homes within ~2 km of a ZIP centroid); a
worker process turns each into a lead row (`--rows fast`: `_leads.fast_fields` for nine in
ten, `quality.clean.clean` for the tenth; `--rows clean`: `clean` for all), with its public
point (`quality.geocode.public_point`: rounded to 0.01 degree, which search runs on), and
`enrich` below fills what a marketplace lead has by then: status (90 % available; sold,
held, expired, withdrawn, quarantined), exclusivity (two in three exclusive, the rest shared
by 2-5 buyers), quality score (0-100, mean ~60), fraud score (mostly under 0.2, 3 % high),
created_at spread over the 60 days before the frozen clock, and a description with 0-4
feature phrases ("pool", "remodeled kitchen", "corner lot", "RV parking", ...; a skewed
distribution, so "pool" is common and "casita" rare). No match keys (search never reads
them). Rows go in with COPY on PostgreSQL, where the server computes the generated `geog`
and `search_tsv` columns and their GiST / GIN indexes as rows arrive, then `VACUUM ANALYZE`;
on SQLite with `executemany`, the FTS5 index and its triggers dropped for the load and
created again by `kit.dialect.create_lead_search` (the migration's DDL; its `'rebuild'`
indexes every row in one pass), then `ANALYZE`. Then `pricing.service.recompute`, the scheduled job, runs
once (timed apart): search prices every lead it shows from the demand/supply snapshots it
saves. `--keep` keeps the store, `--reuse` measures it again.

Measure: the real app (`aiqleads.app.create_app`, FrozenClock at the load's "now", no
Redis, no periodic jobs, logs at WARNING) under uvicorn on 127.0.0.1 in a subprocess; an agent signs up over
HTTP (register, the verification link from the outbox, login) and searches with the access
token. An aiohttp load generator in this process (`_common.load_session`) keeps `--clients`
requests in flight (closed loop: each client sends its next request when the last one
answers). Each scenario
runs `--warmup` requests first (not counted), then `--requests` (or `--max-seconds`), then,
with `--pace S`, `--requests` more with each client starting one search every S seconds (an
agent reads the results before searching again), then `--serial` requests with one client
(the service time without queueing). Parameters are
drawn from a uniform sample of 20,000 available leads ("a lead that exists"), so every
search below has at least one match, which each response must contain:

* radius: lat/lon within 3 km of the sampled lead, `radius_mi=10`, three filters the lead
  satisfies (of min_beds, min_price_cents or max_price_cents, property_type, min_quality),
  sort by price, newest or distance (a third each). Target: p95 <= 50 ms on PostgreSQL,
  <= 150 ms on SQLite.
* text: the lead's market and `q` = words of its description's features, its street name,
  or its city and a feature; sorted by relevance.
* facets: the lead's market, one filter it satisfies, `facets=true` (the first page and
  counts by kind, property type, price band and market).

Every response must be 200, non-empty, and its items must satisfy the request (filters,
distance, market, sort order; facets only count the market asked for). Reported per
scenario: p50/p95/p99/max latency, throughput, and the CPU the server process and the load
generator spent per request (both share the machine's cores with the database).
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import math
import multiprocessing
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

import _common as c
import _leads
from aiqleads.ingest import synthetic
from aiqleads.leads.models import Lead

TARGET_P95_MS = {"postgresql": 50.0, "sqlite": 150.0}
RADIUS_MI = 10.0
METERS_PER_MILE = 1_609.344
SAMPLE = 20_000  # available leads the parameters are drawn from
SEARCH = "/api/v1/leads/search"
PASSWORD = "bench-search-latency-1"
SCENARIOS = ("radius", "text", "facets")

# --------------------------------------------------------------------------------------------
# What a marketplace lead looks like by the time agents search (enrich runs in the workers)
# --------------------------------------------------------------------------------------------

# Features sellers write, most common first (drawn with weight 1 / rank^0.8).
FEATURES = (
    "pool",
    "remodeled kitchen",
    "new roof",
    "large backyard",
    "corner lot",
    "open floor plan",
    "single story",
    "granite countertops",
    "covered patio",
    "updated bathrooms",
    "3-car garage",
    "RV parking",
    "no HOA",
    "solar panels",
    "mountain views",
    "hardwood floors",
    "vaulted ceilings",
    "cul-de-sac",
    "fireplace",
    "walk-in closet",
    "gated community",
    "near schools",
    "fixer upper",
    "motivated seller",
    "investor special",
    "move-in ready",
    "golf course",
    "guest house",
    "owner financing",
    "casita",
)
_FEATURE_WEIGHTS = [1 / (rank + 1) ** 0.8 for rank in range(len(FEATURES))]
_STATUSES = (
    ("available", 90.0),
    ("sold", 4.0),
    ("expired", 2.0),
    ("withdrawn", 2.0),
    ("held", 1.0),
    ("quarantined", 1.0),
)
DAYS = 60  # leads were created over the 60 days before the frozen "now"


def enrich(values: dict[str, Any], rng: random.Random) -> None:
    """Scores, status, sales terms, dates and description of one lead (in place); `rng` is
    seeded by the record's key, so a load is the same every run."""
    values["id"] = uuid.UUID(int=rng.getrandbits(128), version=4)
    status = rng.choices([s for s, _ in _STATUSES], [w for _, w in _STATUSES])[0]
    values["status"] = status
    values["quality_score"] = min(100, max(0, round(rng.gauss(60, 18))))
    fraud = rng.betavariate(1.2, 14) if rng.random() > 0.03 else rng.uniform(0.5, 1.0)
    if status == "quarantined":
        fraud = max(fraud, rng.uniform(0.7, 1.0))
    values["fraud_score"] = round(fraud, 3)
    if rng.random() < 2 / 3:
        values["exclusivity"], values["max_sales"], values["sales_count"] = "exclusive", 1, 0
    else:
        max_sales = rng.randint(2, 5)
        sold = max_sales if status == "sold" else rng.randint(0, max_sales - 1)
        values["exclusivity"], values["max_sales"], values["sales_count"] = (
            "shared",
            max_sales,
            sold,
        )
    if status == "sold" and values["exclusivity"] == "exclusive":
        values["sales_count"] = 1
    created = c.FROZEN_NOW - timedelta(seconds=rng.uniform(0, DAYS * 86_400))
    values["created_at"] = values["updated_at"] = values["status_changed_at"] = created
    values["source_updated_at"] = created - timedelta(seconds=rng.uniform(60, 6 * 3_600))
    if rng.random() < 0.1:
        values["description"] = None
        return
    n = rng.choices((0, 1, 2, 3, 4), (15, 30, 30, 17, 8))[0]
    features: list[str] = []
    while len(features) < n:
        feature = rng.choices(FEATURES, _FEATURE_WEIGHTS)[0]
        if feature not in features:
            features.append(feature)
    parts = [values["description"]] if values.get("description") else []
    if features:
        listed = features[0] if n == 1 else ", ".join(features[:-1]) + " and " + features[-1]
        parts.append(listed[0].upper() + listed[1:] + ".")
    if not parts:
        city = (values.get("city") or "town").title()
        parts.append(f"Homeowner in {city}.")
    values["description"] = " ".join(parts)


# --------------------------------------------------------------------------------------------
# The server, in its own process
# --------------------------------------------------------------------------------------------


def serve(database_url: str, port: int) -> None:
    """Run the app under uvicorn on 127.0.0.1:`port` (the `--serve` mode of this script)."""
    import uvicorn

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
    # No periodic jobs: in production they run in `aiqleads worker`, not in the API process,
    # and with a frozen clock every one is due at start (pricing.recompute over every lead on
    # sale would then share the server's core with the searches being measured).
    app = create_app(settings, FrozenClock(c.FROZEN_NOW), run_scheduler=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


async def sign_up(base_url: str, db: c.BenchDatabase) -> str:
    """An agent's access token: register, follow the e-mailed verification link, sign in."""
    from aiqleads.accounts.models import User
    from aiqleads.mail.models import OutboundEmail

    email = f"bench-{uuid.uuid4().hex[:10]}@agents.example.com"
    runtime = c.make_runtime(db)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            r = await client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "name": "Bench Agent"},
            )
            assert r.status_code == 202, r.text
            async with runtime.transaction(write=False) as session:
                mail = await session.scalar(
                    sa.select(OutboundEmail)
                    .where(OutboundEmail.to_address == email, OutboundEmail.kind == "verify_email")
                    .order_by(OutboundEmail.created_at.desc())
                )
            assert mail is not None, "no verification e-mail in the outbox"
            match = re.search(r"token=([A-Za-z0-9_-]+)", mail.body_text)
            assert match, mail.body_text
            r = await client.post(
                "/api/v1/auth/verify-email",
                json={"token": match.group(1), "password": PASSWORD},
            )
            assert r.status_code == 200, r.text
            r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
        # The load is the point: an operator's custom API limit, far above Basic's 100 a
        # minute (which would answer 429 here).
        async with runtime.transaction() as session:
            await session.execute(
                sa.update(User).where(User.email == email).values(rate_limit_per_minute=1_000_000)
            )
        return str(r.json()["access_token"])
    finally:
        await runtime.shutdown()


# --------------------------------------------------------------------------------------------
# Requests: parameters drawn from leads that exist, and what each answer must satisfy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """An available lead that a search is built around (so it has at least one match)."""

    market: str
    lat: float
    lon: float
    street_name: str | None
    city: str | None
    description: str | None
    property_type: str | None
    beds: int | None
    price: int | None
    quality: int


@dataclass
class Request:
    scenario: str
    params: list[tuple[str, str | int | float]]
    check: Callable[[dict[str, Any]], str | None]  # the body -> what is wrong, or None
    matches: Callable[[dict[str, Any]], int | None] = lambda body: None


async def sample_seeds(db: c.BenchDatabase) -> tuple[list[Seed], int]:
    """A uniform sample of available leads with a point (ids are random: the first by id),
    and how many leads the store holds."""
    runtime = c.make_runtime(db)
    try:
        async with runtime.transaction(write=False) as session:
            total = int(await session.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0)
            rows = (
                await session.execute(
                    sa.select(
                        Lead.market,
                        Lead.public_latitude,
                        Lead.public_longitude,
                        Lead.street_name,
                        Lead.city,
                        Lead.public_description,
                        Lead.property_type,
                        Lead.beds,
                        Lead.list_price_cents,
                        Lead.quality_score,
                    )
                    .where(
                        Lead.status == "available",
                        Lead.public_latitude.is_not(None),
                        Lead.market.is_not(None),
                    )
                    .order_by(Lead.id)
                    .limit(SAMPLE)
                )
            ).all()
    finally:
        await runtime.shutdown()
    return [Seed(*row) for row in rows], total


def _features_of(description: str | None) -> list[str]:
    low = (description or "").lower()
    return [f for f in FEATURES if f.lower() in low]


def _haversine_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from aiqleads.quality.geocode import haversine_km

    return haversine_km(lat1, lon1, lat2, lon2) / 1.609344


def _ordered(values: list[Any], descending: bool) -> bool:
    pairs = zip(values, values[1:], strict=False)
    return all((a >= b) if descending else (a <= b) for a, b in pairs)


def radius_request(rng: random.Random, seeds: list[Seed]) -> Request:
    while True:
        s = rng.choice(seeds)
        filters: list[tuple[str, Any]] = []
        if s.beds:
            filters.append(("min_beds", max(1, s.beds - rng.choice((0, 0, 1)))))
        if s.price:
            if rng.random() < 0.6:
                top = s.price * rng.uniform(1.0, 1.6)
                filters.append(("max_price_cents", int(-(-top // 1_000_000) * 1_000_000)))
            else:
                low = s.price * rng.uniform(0.5, 1.0)
                filters.append(("min_price_cents", int(low // 1_000_000 * 1_000_000)))
        if s.property_type:
            filters.append(("property_type", s.property_type))
        floors = [q for q in (30, 40, 50, 60, 70) if q <= s.quality]
        if floors:
            filters.append(("min_quality", rng.choice(floors)))
        if len(filters) >= 3:
            break
    filters = rng.sample(filters, 3)
    # The centre: within 3 km of the lead (a search "near where leads are").
    dist_km, angle = 3.0 * rng.random() ** 0.5, rng.uniform(0, 2 * math.pi)
    lat = s.lat + dist_km * math.cos(angle) / 111.0
    lon = s.lon + dist_km * math.sin(angle) / (111.0 * math.cos(math.radians(s.lat)))
    lat, lon = round(lat, 5), round(lon, 5)
    sort = rng.choice(("price", "newest", "distance"))
    params: list[tuple[str, Any]] = [
        ("lat", lat),
        ("lon", lon),
        ("radius_mi", RADIUS_MI),
        *filters,
        ("sort", sort),
    ]
    wanted = dict(filters)

    def check(body: dict[str, Any]) -> str | None:
        items = body["items"]
        if not items:
            return "no items (the seed lead matches)"
        for it in items:
            p = it["property"]
            if "min_beds" in wanted and (p["beds"] is None or p["beds"] < wanted["min_beds"]):
                return f"beds {p['beds']} < {wanted['min_beds']}"
            price = p["list_price_cents"]
            if "max_price_cents" in wanted and (price is None or price > wanted["max_price_cents"]):
                return f"price {price} > max"
            if "min_price_cents" in wanted and (price is None or price < wanted["min_price_cents"]):
                return f"price {price} < min"
            if "property_type" in wanted and p["type"] != wanted["property_type"]:
                return f"type {p['type']}"
            if "min_quality" in wanted and it["quality_score"] < wanted["min_quality"]:
                return "quality below min"
            loc = it["location"]
            if _haversine_mi(lat, lon, loc["latitude"], loc["longitude"]) > RADIUS_MI + 0.01:
                return "outside the radius"
            if it["status"] != "available":
                return f"status {it['status']}"
        if sort == "price" and not _ordered(
            [it["property"]["list_price_cents"] or 2**62 for it in items], False
        ):
            return "not sorted by price"
        if sort == "newest" and not _ordered([it["created_at"] for it in items], True):
            return "not sorted newest first"
        if sort == "distance" and not _ordered([it["distance_mi"] for it in items], False):
            return "not sorted by distance"
        return None

    return Request("radius", params, check)


def text_request(rng: random.Random, seeds: list[Seed]) -> Request:
    while True:
        s = rng.choice(seeds)
        features = _features_of(s.description)
        roll = rng.random()
        if roll < 0.45 and features:
            q = rng.choice(features)
        elif roll < 0.6 and len(features) >= 2:
            q = " ".join(rng.sample(features, 2))
        elif roll < 0.85 and s.street_name:
            q = s.street_name.lower()
        elif features and s.city:
            q = f"{s.city.title()} {rng.choice(features)}"
        else:
            continue
        break
    market = s.market

    def check(body: dict[str, Any]) -> str | None:
        items = body["items"]
        if not items:
            return f"no items for q={q!r} (the seed lead matches)"
        if any(it["market"] != market for it in items):
            return "an item of another market"
        return None

    return Request("text", [("market", market), ("q", q)], check)


def facets_request(rng: random.Random, seeds: list[Seed]) -> Request:
    while True:
        s = rng.choice(seeds)
        options: list[tuple[str, Any]] = []
        if s.beds:
            options.append(("min_beds", max(1, s.beds - 1)))
        if s.property_type:
            options.append(("property_type", s.property_type))
        if s.price:
            options.append(("max_price_cents", int(-(-s.price * 1.3 // 1_000_000) * 1_000_000)))
        options.append(("min_quality", rng.choice([q for q in (0, 30, 50) if q <= s.quality])))
        break
    market = s.market
    params = [("market", market), rng.choice(options), ("facets", "true")]

    def check(body: dict[str, Any]) -> str | None:
        if not body["items"]:
            return "no items (the seed lead matches)"
        facets = body.get("facets")
        if not facets:
            return "no facets"
        if [f["value"] for f in facets["market"]] != [market]:
            return f"market facet {facets['market']}"
        total = sum(f["count"] for f in facets["kind"])
        for name in ("property_type", "price_band"):
            if sum(f["count"] for f in facets[name]) != total:
                return f"{name} counts do not add up to the kind counts"
        if total < len(body["items"]):
            return "fewer counted than listed"
        return None

    def matches(body: dict[str, Any]) -> int | None:
        facets = body.get("facets") or {}
        return sum(f["count"] for f in facets.get("kind", [])) if facets else None

    return Request("facets", params, check, matches)


MAKERS: dict[str, Callable[[random.Random, list[Seed]], Request]] = {
    "radius": radius_request,
    "text": text_request,
    "facets": facets_request,
}

# --------------------------------------------------------------------------------------------
# The load generator
# --------------------------------------------------------------------------------------------


@dataclass
class Phase:
    scenario: str
    clients: int
    pace: float = 0.0  # seconds between one client's requests (0: back to back)
    latencies: list[float] = field(default_factory=list)  # ms, answered requests
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # what was wrong, per bad response
    items: list[int] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    capped: bool = False

    @property
    def n(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.n / self.wall if self.wall else float("nan")


async def drive(
    server: c.Server,
    token: str,
    requests: list[Request],
    clients: int,
    max_seconds: float,
    scenario: str,
    pace: float = 0.0,
) -> Phase:
    """Send `requests` with `clients` in flight (closed loop), each client starting a request
    every `pace` seconds if given (an agent who reads the results before searching again);
    time each one."""
    phase = Phase(scenario, clients, pace)
    headers = {"Authorization": f"Bearer {token}"}
    queue = iter(requests)
    deadline = time.perf_counter() + max_seconds

    async def client_loop(client: Any) -> None:
        for req in queue:
            if time.perf_counter() > deadline:
                phase.capped = True
                return
            t0 = time.perf_counter()
            async with client.get(SEARCH, params=req.params) as response:
                raw = await response.read()
                status = int(response.status)
            elapsed = (time.perf_counter() - t0) * 1e3
            phase.latencies.append(elapsed)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            if status != 200:
                phase.failures.append(f"{status}: {raw[:200]!r}")
                continue
            body = json.loads(raw)
            problem = req.check(body)
            if problem:
                phase.failures.append(f"{problem} ({req.params})")
            phase.items.append(len(body["items"]))
            if (m := req.matches(body)) is not None:
                phase.matches.append(m)
            if pace:
                await asyncio.sleep(max(0.0, t0 + pace - time.perf_counter()))

    async with c.load_session(server.base_url, clients, headers) as client:
        cpu0, scpu0, t0 = time.process_time(), server.cpu_seconds(), time.perf_counter()
        if pace:  # spread the clients' first requests over one period
            starts = [asyncio.sleep(pace * i / clients) for i in range(clients)]
            await asyncio.gather(*(_after(start, client_loop(client)) for start in starts))
        else:
            await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        phase.wall = time.perf_counter() - t0
        phase.client_cpu = time.process_time() - cpu0
        phase.server_cpu = server.cpu_seconds() - scpu0
    return phase


async def _after(first: Any, then: Any) -> None:
    await first
    await then


def clients_text(phase: Phase) -> str:
    if phase.pace:
        return f"{phase.clients}, one search per {phase.pace:g} s each"
    return f"{phase.clients}"


def stats(phase: Phase) -> dict[str, float]:
    v = phase.latencies
    return {
        "p50": c.percentile(v, 50),
        "p95": c.percentile(v, 95),
        "p99": c.percentile(v, 99),
        "max": max(v) if v else float("nan"),
        "mean": sum(v) / len(v) if v else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


async def recompute(db: c.BenchDatabase) -> Any:
    """`pricing.service.recompute`, the scheduled job: snapshots and every price on sale."""
    from aiqleads.pricing.service import recompute as run

    runtime = c.make_runtime(db)
    try:
        return await run(runtime)
    finally:
        await runtime.shutdown()


def load_line(facts: dict[str, Any]) -> str:
    """The docs' sentence on how the store was loaded (`facts` as load_store saves them)."""
    n, seconds = facts["leads"], facts["seconds"]
    finish = " + ".join(f"{v:.0f} s `{k}`" for k, v in facts["finish"].items())
    total = seconds + sum(facts["finish"].values())
    return (
        f"Bulk load ({facts['date']}): {n:,} leads in {seconds:.0f} s ({n / seconds:,.0f} leads/s; "
        f"`--rows {facts['rows']}`, {facts['workers']} worker process(es), "
        f"{'COPY' if facts['kind'] == 'postgresql' else 'executemany'}) + {finish}: "
        f"**{total / 60:.1f} min** in all; {facts['generated']:,} records generated, "
        f"{facts['rejected']:,} rejected by `clean()`. Then the scheduled `pricing.recompute` "
        f"(demand/supply snapshots and every price on sale; search prices each lead it shows "
        f"from the snapshots): {facts['recompute']:.0f} s."
    )


def load_store(args: argparse.Namespace) -> tuple[c.BenchDatabase, dict[str, Any] | None]:
    """The store to search, and the facts of its load (kept next to it for `--reuse`)."""
    label = f"search_latency_{args.database}"
    facts_file = c.BENCH_DIR / f"{label}.load.json"
    if args.reuse:
        facts = json.loads(facts_file.read_text()) if facts_file.exists() else None
        return c.kept_database(args.database, label), facts
    db = c.fresh_database(args.database, label)
    stream = synthetic.iter_generate(
        int(args.leads * 1.05) + 10_000,
        seed=args.seed,
        fraud_rate=0.0,
        duplicate_rate=0.0,
        now=c.FROZEN_NOW,
    )
    print(
        f"loading {args.leads:,} leads into {db.kind} ({db.name}) with {args.workers} workers ...",
        flush=True,
    )
    ctx = multiprocessing.get_context("fork")
    init = functools.partial(_leads.worker_init, keys=False, enrich=enrich)
    pool = ctx.Pool(args.workers, initializer=init, initargs=(db.kind, args.rows))
    gc.disable()  # the loader builds no reference cycles; full scans of its heap only cost
    try:
        loaded = asyncio.run(
            _leads.load(
                db,
                pool,
                stream,
                set(),
                target=args.leads,
                workers=args.workers,
                seed=args.seed,
                report_every=args.report_every,
            )
        )
    finally:
        pool.terminate()
        pool.join()
        gc.enable()
    n = len(loaded.stored)
    print(
        f"  loaded {n:,} leads in {loaded.seconds:.0f} s ({n / loaded.seconds:,.0f} leads/s) + "
        f"{loaded.finish_text()}; {loaded.generated:,} records generated, "
        f"{loaded.rejected:,} rejected by clean(), {len(loaded.too_long)} too long",
        flush=True,
    )
    # What the scheduled pricing job would have done by now: search prices every lead it shows
    # from the saved demand/supply snapshots (without them it measures them on each request).
    t0 = time.perf_counter()
    recomputed = asyncio.run(recompute(db))
    recompute_seconds = time.perf_counter() - t0
    print(f"  pricing.recompute: {recompute_seconds:.0f} s ({recomputed})", flush=True)
    facts = {
        "kind": db.kind,
        "leads": n,
        "seconds": round(loaded.seconds, 1),
        "finish": {k: round(v, 1) for k, v in loaded.finish_parts.items()},
        "generated": loaded.generated,
        "rejected": loaded.rejected,
        "rows": args.rows,
        "workers": args.workers,
        "date": c.machine()["date"],
        "recompute": round(recompute_seconds, 1),
    }
    facts_file.parent.mkdir(parents=True, exist_ok=True)
    facts_file.write_text(json.dumps(facts, indent=1))
    return db, facts


def database_size(db: c.BenchDatabase) -> str:
    if db.kind == "sqlite":
        size = sum(
            Path(db.name + s).stat().st_size for s in ("", "-wal") if Path(db.name + s).exists()
        )
        return f"{size / 2**30:.2f} GiB file"

    async def pg() -> str:
        import asyncpg

        conn = await asyncpg.connect(db.asyncpg_dsn)
        try:
            table = await conn.fetchval("SELECT pg_table_size('leads')")
            indexes = await conn.fetchval("SELECT pg_indexes_size('leads')")
        finally:
            await conn.close()
        return f"leads table {table / 2**30:.2f} GiB + indexes {indexes / 2**30:.2f} GiB"

    return asyncio.run(pg())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--clients", type=int, default=20, help="requests in flight")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="also run the clients at one search every PACE seconds each (after the "
        "closed loop): agents who read their results before searching again",
    )
    parser.add_argument("--requests", type=int, default=2_000, help="measured, per scenario")
    parser.add_argument("--warmup", type=int, default=100, help="per scenario, not counted")
    parser.add_argument(
        "--serial", type=int, default=200, help="then this many with one client, per scenario"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="stop a measured phase after this long (the count reached is reported)",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", choices=("clean", "fast"), default="fast")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="loader processes that build the rows (default one per CPU), while this process "
        "generates the records and writes the rows with COPY",
    )
    parser.add_argument("--report-every", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database an earlier --keep run left (no load; kept again)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {sorted(unknown)}; of {', '.join(SCENARIOS)}")
    c.quiet_logs()

    db, facts = load_store(args)
    keep = args.keep or args.reuse
    server: c.Server | None = None
    try:
        db_version = c.database_version(db)
        size = database_size(db)
        seeds, total = asyncio.run(sample_seeds(db))
        print(f"store: {total:,} leads ({size}); {len(seeds):,} seed leads sampled", flush=True)
        server = c.Server.start(__file__, [db.url], f"search_server_{db.kind}.log")
        token = asyncio.run(sign_up(server.base_url, db))
        rng = random.Random(args.seed)
        results: dict[str, list[Phase]] = {}
        for scenario in scenarios:
            make = MAKERS[scenario]
            warm = [make(rng, seeds) for _ in range(args.warmup)]
            measured = [make(rng, seeds) for _ in range(args.requests)]
            serial = [make(rng, seeds) for _ in range(args.serial)]
            print(
                f"{scenario}: {len(warm)} warm-up, {len(measured)} with {args.clients} clients, "
                f"{len(serial)} with 1 client ...",
                flush=True,
            )
            asyncio.run(drive(server, token, warm, args.clients, args.max_seconds, scenario))
            phases = [
                asyncio.run(
                    drive(server, token, measured, args.clients, args.max_seconds, scenario)
                )
            ]
            if args.pace:
                paced = [make(rng, seeds) for _ in range(args.requests)]
                phases.append(
                    asyncio.run(
                        drive(
                            server,
                            token,
                            paced,
                            args.clients,
                            args.max_seconds,
                            scenario,
                            pace=args.pace,
                        )
                    )
                )
            if serial:
                phases.append(
                    asyncio.run(drive(server, token, serial, 1, args.max_seconds, scenario))
                )
            results[scenario] = phases
            for ph in phases:
                q = stats(ph)
                print(
                    f"  {clients_text(ph):>2}: n {ph.n:,}  p50 {q['p50']:.1f}  p95 {q['p95']:.1f}  "
                    f"p99 {q['p99']:.1f}  max {q['max']:.1f} ms  {ph.throughput:.1f} req/s  "
                    f"server CPU {ph.server_cpu / max(ph.n, 1) * 1e3:.1f} ms/req  "
                    f"statuses {ph.statuses}  bad {len(ph.failures)}"
                    + ("  (stopped at --max-seconds)" if ph.capped else ""),
                    flush=True,
                )
                for failure in ph.failures[:3]:
                    print(f"    bad: {failure}")
    finally:
        if server is not None:
            server.stop()
        if not keep:
            db.drop()
        else:
            print(f"kept the database: {db.name}")

    report(args, db, db_version, size, total, facts, results)


def report(
    args: argparse.Namespace,
    db: c.BenchDatabase,
    db_version: str,
    size: str,
    total: int,
    facts: dict[str, Any] | None,
    results: dict[str, list[Phase]],
) -> None:
    target = TARGET_P95_MS[db.kind]
    rows = []
    for scenario, phases in results.items():
        for ph in phases:
            q = stats(ph)
            ok = ph.statuses.get(200, 0)
            rows.append(
                [
                    scenario,
                    clients_text(ph),
                    f"{ph.n:,}" + (" (time cap)" if ph.capped else ""),
                    f"{ok:,}/{ph.n:,}",
                    f"{len(ph.failures)}",
                    *(f"{q[k]:.1f}" for k in ("p50", "p95", "p99", "max")),
                    f"{ph.throughput:.1f}",
                    f"{ph.server_cpu / max(ph.n, 1) * 1e3:.1f}",
                    f"{ph.client_cpu / max(ph.n, 1) * 1e3:.1f}",
                ]
            )
    verdict = ""
    if "radius" in results:
        p95 = stats(results["radius"][0])["p95"]
        ok = p95 <= target and not results["radius"][0].failures
        verdict = (
            f"Target: radius search p95 <= {target:.0f} ms at {args.clients} clients: "
            f"{c.verdict(ok)} (p95 {p95:.1f} ms)."
        )
        print(f"\n{verdict.replace('**', '')}")
    if args.no_docs:
        return
    store = f"Store: **{total:,} leads**, {size}" + (
        ", kept by an earlier run (`--reuse`)." if args.reuse else "."
    )
    store += " " + (load_line(facts) if facts else "Load figures not recorded.")
    facet_counts = results.get("facets", [Phase("facets", 0)])[0].matches
    lines = c.environment_lines(
        [
            ("Database", db_version + (f" (`{db.name}`, kept)" if args.keep or args.reuse else "")),
            (
                "Server",
                "uvicorn, one process, `create_app` (no Redis, no periodic jobs, logs at WARNING), "
                "on 127.0.0.1; "
                f"load generator: {c.LOAD_GENERATOR}",
            ),
        ]
    )
    lines += [
        "",
        store,
        "",
        f"Requests: `GET {SEARCH}` with an agent's access token; per scenario {args.warmup} "
        f"warm-up requests, then {args.requests:,} with {args.clients} clients in a closed loop, "
        + (
            f"then {args.requests:,} with {args.clients} clients each starting one search every "
            f"{args.pace:g} s, "
            if args.pace
            else ""
        )
        + f"then {args.serial} with one client. Each search is built around an available lead "
        "(see the script), so each must answer 200 with at least that match, and every item "
        "must satisfy the request; `bad` counts answers that did not.",
        "",
        *c.table(
            [
                "scenario",
                "clients",
                "requests",
                "200",
                "bad",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "req/s",
                "server CPU ms/req",
                "client CPU ms/req",
            ],
            rows,
        ),
        "",
        verdict,
    ]
    if facet_counts:
        lines += [
            "",
            f"Facets scenario: matches per search (the counts' total) p50 "
            f"{c.percentile(facet_counts, 50):,.0f}, p95 {c.percentile(facet_counts, 95):,.0f}.",
        ]
    c.write_section(f"search_latency:{db.kind}", f"Search latency ({db.kind})", lines)


if __name__ == "__main__":
    main()
