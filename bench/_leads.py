"""The benchmarks' bulk path for leads: synthetic records -> lead rows -> COPY / executemany.

Used by `match_latency.py` (stored leads with their match keys) and `search_latency.py`
(marketplace leads). The pipeline itself stores ~500 leads/s; a million leads need this path.

* Records stream from `synthetic.iter_generate` in the main process; the first copy of each
  entity becomes one lead. Worker processes (`multiprocessing`, fork) turn chunks of records
  into rows in the table's column order:
  - `rows="clean"`: every record through the real connector parse and `quality.clean.clean`,
    exactly what the pipeline derives (about 1.5 ms of CPU per record);
  - `rows="fast"`: one entity in ten (chosen by a hash of its id: `probe_eligible`) still
    through `clean`; the other nine through `fast_fields`, a cheap normaliser written for the
    generator's formats that uses the pipeline's own field parsers and offline geocoder
    (names, phone, e-mail, street parts, ZIP and state, property facts, point, market).
  Records `clean` rejects are skipped (the pipeline stores no lead for them), and so are rows
  with a value longer than its column (PostgreSQL would refuse them). Every lead gets its
  public point (`quality.geocode.public_point`, what search runs on), as the pipeline's golden
  record does, and its redacted public description and `search_text` (what text search reads).
  A caller's `enrich(values, rng)` sets the rest of the row first (scores, status, dates,
  description: see search_latency.py), with a random generator seeded by the record's key.
* Rows go in with COPY on PostgreSQL (asyncpg `copy_records_to_table`, one transaction per
  20k leads, tables and indexes as migrated; the generated `geog` and `search_tsv` columns and
  their GiST / GIN indexes are computed by the server as rows arrive), then `VACUUM ANALYZE`
  and `CHECKPOINT`. On SQLite, `executemany` with one transaction per 20k leads
  (synchronous=OFF during the load only); the FTS5 index and its triggers are dropped for the
  load and created again afterwards by `kit.dialect.create_lead_search` (the migration's own
  DDL), whose `'rebuild'` indexes every row in one pass, then `ANALYZE` (as ingestion's
  `Statistics` does while a store grows) and a WAL checkpoint.
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import gc
import json
import random
import re
import sqlite3
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

import _common as c
from aiqleads.ingest import synthetic
from aiqleads.kit.bulk import string_limits
from aiqleads.kit.dialect import SQLITE_FULL_ANALYSIS
from aiqleads.leads.models import Lead
from aiqleads.quality import dedup

CHUNK = 1_000  # records per worker task
FLUSH = 20_000  # leads per COPY / executemany transaction
LEAD_COLUMNS = tuple(col.name for col in Lead.__table__.columns)
# Declared string lengths: PostgreSQL refuses a longer value (SQLite does not check).
_LENGTHS = string_limits(Lead.__table__)  # type: ignore[arg-type]
KEY_COLUMNS = ("key", "lead_id")
CLEAN_ERROR = "clean() error"

# A record as the workers get it: (entity_id, source, source_key, payload, source_updated_at).
Item = tuple[str, str, str, dict[str, Any], datetime]
# What a caller may add to a lead row: enrich(values, rng) edits `values` in place.
Enrich = Callable[[dict[str, Any], random.Random], None]

# --------------------------------------------------------------------------------------------
# Worker side: parse + clean (or the fast normaliser) -> lead rows (+ match keys)
# --------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def worker_init(
    kind: str, rows: str = "clean", *, keys: bool = True, enrich: Enrich | None = None
) -> None:
    """Set up a worker (or the main process) to build rows for a `kind` database."""
    from aiqleads.ingest.registry import wire
    from aiqleads.ingest.sources import load_sources
    from aiqleads.kit.clock import FrozenClock
    from aiqleads.markets.catalog import load_markets
    from aiqleads.quality.geocode import gazetteer

    sources = load_sources()
    clock = FrozenClock(c.FROZEN_NOW)
    _W["kind"] = kind
    _W["sources"] = {s: sources.get(s) for s in synthetic.DEMO_SOURCES}
    _W["parse"] = {s: wire(_W["sources"][s], clock=clock).parse for s in synthetic.DEMO_SOURCES}
    _W["markets"] = load_markets()
    _W["converters"] = _converters(kind)
    _W["rows"] = rows
    _W["keys"] = keys
    _W["enrich"] = enrich
    gazetteer()  # built once here, not in the first chunk
    gc.freeze()  # what is loaded so far lives for good: keep it out of the collector's scans


def _converters(kind: str) -> list[Any]:
    """Per lead column: Python value -> what the driver's bulk path takes."""
    from aiqleads.kit.dialect import UTCDateTime

    out: list[Any] = []
    for col in Lead.__table__.columns:
        t = col.type
        if isinstance(t, sa.JSON):
            out.append(lambda v: None if v is None else json.dumps(v, default=str))
        elif kind == "sqlite" and isinstance(t, sa.Uuid):
            out.append(lambda v: None if v is None else v.hex)
        elif kind == "sqlite" and isinstance(t, UTCDateTime):
            out.append(
                lambda v: (
                    None
                    if v is None
                    else v.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
                )
            )
        elif isinstance(t, sa.Enum):
            out.append(lambda v: None if v is None else str(getattr(v, "value", v)))
        elif isinstance(t, sa.Boolean) and kind == "sqlite":
            out.append(lambda v: None if v is None else int(v))
        else:
            out.append(None)
    return out


def clean_record(source: str, key: str, payload: dict[str, Any], updated: datetime) -> Any:
    """The pipeline's parse + clean for one record (None when it would be quarantined)."""
    from aiqleads.ingest.connectors.base import RawRecord
    from aiqleads.quality.clean import clean

    src = _W["sources"][source]
    candidate = _W["parse"][source](RawRecord(key, payload, updated))
    if candidate.market is None and src.market:
        candidate.market = src.market
    cleaned = clean(candidate, src.default_kind, _W["markets"])
    if cleaned.errors:
        return None
    return cleaned.fields


# The generator's street formats, for rows="fast" (USPS Pub. 28 abbreviations, as clean gives).
_USPS_SUFFIX = {
    full.upper(): abbr.upper()
    for full, abbr in synthetic._SUFFIXES  # noqa: SLF001
} | {abbr.upper(): abbr.upper() for _, abbr in synthetic._SUFFIXES}  # noqa: SLF001
_DIRECTION = {
    "N": "N",
    "S": "S",
    "E": "E",
    "W": "W",
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
}
_STATES = {"NEVADA": "NV", "TEXAS": "TX", "ARIZONA": "AZ"}
_UNIT_RE = re.compile(r"^(?P<street>.*?)[ ,]+(?P<type>#|apt\.?|unit)\s*#?\s*(?P<id>\S+)$", re.I)
_UNIT_ONLY = re.compile(r"^(?P<type>#|apt\.?|unit)?\s*#?\s*(?P<id>\S+)$", re.I)
_NON_DIGIT = re.compile(r"\D")


def fast_fields(payload: dict[str, Any], source: str) -> dict[str, Any] | None:
    """Lead fields from a generated payload without `clean` (see rows="fast")."""
    from aiqleads.quality import normalise as n
    from aiqleads.quality.geocode import assign_market, geocode

    f: dict[str, Any] = {
        "kind": str(payload.get("kind") or _W["sources"][source].default_kind).lower()
    }
    name, _ = n.normalise_name(
        payload.get("first_name"), payload.get("last_name"), payload.get("full_name")
    )
    f["first_name"], f["last_name"] = name.first, name.last
    digits = _NON_DIGIT.sub("", str(payload.get("phone") or ""))
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    f["phone"] = f"+1{digits}" if len(digits) == 10 else None
    f["phone_type"] = "fixed_line_or_mobile" if f["phone"] else None
    email = str(payload.get("email") or "").strip().lower()
    f["email"] = email or None
    street = str(payload.get("street") or "").strip()
    unit_type = unit = None
    if m := _UNIT_RE.match(street):
        street, unit_type, unit = m["street"], m["type"], m["id"]
    elif payload.get("unit") and (m := _UNIT_ONLY.match(str(payload["unit"]).strip())):
        unit_type, unit = m["type"] or "#", m["id"]
    tokens = street.upper().replace(".", "").replace(",", " ").split()
    if len(tokens) < 2 or not tokens[0].isdigit():
        return None
    number, rest = tokens[0], tokens[1:]
    pre = _DIRECTION.get(rest[0]) if len(rest) > 2 else None
    if pre:
        rest = rest[1:]
    suffix = _USPS_SUFFIX.get(rest[-1]) if len(rest) > 1 else None
    if suffix:
        rest = rest[:-1]
    zip5, zip4, _ = n.normalise_postal_code(payload.get("postal_code"))
    state = str(payload.get("state") or "").strip().upper()
    state = _STATES.get(state, state) if state else None
    line1 = " ".join(x for x in (number, pre, " ".join(rest), suffix) if x)
    unit_type = (
        None if unit_type is None else ("#" if unit_type == "#" else unit_type.upper().rstrip("."))
    )
    f.update(
        street_number=number,
        street_pre_direction=pre,
        street_name=" ".join(rest),
        street_suffix=suffix,
        unit_type=unit_type,
        unit_number=unit.upper() if unit else None,
        address_line1=line1,
        address_line2=f"{unit_type} {unit.upper()}" if unit else None,
        city=str(payload.get("city") or "").upper() or None,
        state=state,
        postal_code=zip5,
        zip4=zip4,
    )
    f["address"] = f"{line1}, {f['city']}, {state} {zip5}"
    # Location as `clean.locate` finds it: the source's point, else the ZIP's, else the city's.
    lat, _ = n.parse_number(payload.get("latitude"), "latitude", -90, 90)
    lon, _ = n.parse_number(payload.get("longitude"), "longitude", -180, 180)
    point, _ = geocode(lat, lon, zip5, f["city"], state)
    f["latitude"] = f["longitude"] = f["geocode_precision"] = f["h3_r7"] = f["h3_r9"] = None
    f["market"] = payload.get("market")
    if point is not None:
        f.update(
            latitude=point.lat,
            longitude=point.lon,
            geocode_precision=point.precision,
            h3_r7=point.h3_coarse,
            h3_r9=point.h3_fine,
        )
        market = assign_market(_W["markets"], point.lat, point.lon, state)
        f["market"] = market.slug if market else f["market"]
    # Property facts through the pipeline's own parsers ("1,850", "$450K", "Single Family").
    f["property_type"], _ = n.normalise_property_type(payload.get("property_type"))
    for key, low, high, integer in (
        ("beds", 0, 50, True),
        ("baths", 0, 50, False),
        ("year_built", 1700, 2100, True),
        ("days_on_market", 0, 20_000, True),
    ):
        f[key], _ = n.parse_number(payload.get(key), key, low, high, integer=integer)
    f["living_area_sqft"], _ = n.parse_area_sqft(
        payload.get("living_area_sqft"), "living_area_sqft", 100, 100_000
    )
    f["lot_size_sqft"], _ = n.parse_area_sqft(
        payload.get("lot_size_sqft"), "lot_size_sqft", 100, 5e7
    )
    f["list_price_cents"], _ = n.parse_price_cents(payload.get("list_price"))
    parcel = str(payload.get("parcel_number") or "").strip().upper()
    f["parcel_number"] = parcel or None
    f["listing_status"] = payload.get("listing_status")
    f["description"] = payload.get("description")
    consent = payload.get("consent")
    if isinstance(consent, dict):
        f["consent_text"] = consent.get("text")
        f["consent_url"] = consent.get("url")
        f["consent_ip"] = consent.get("ip")
        f["consent_user_agent"] = consent.get("user_agent")
        f["consent_certificate_url"] = consent.get("certificate_url")
    f["attributes"] = (
        {"submitted_ip": payload["submitted_ip"]} if payload.get("submitted_ip") else {}
    )
    return f


def probe_eligible(entity_id: str) -> bool:
    """In rows="fast", the tenth of entities that are cleaned for real (duplicate probes)."""
    return zlib.crc32(entity_id.encode()) % 10 == 0


def lead_values(fields: dict[str, Any], source: str, key: str, updated: datetime) -> dict[str, Any]:
    """A stored lead's columns: the cleaned fields, and what the pipeline sets on a new lead
    (available, exclusive, quality 50, fraud 0: the match path never reads scores)."""
    now = c.FROZEN_NOW
    values = {k: v for k, v in fields.items() if k in LEAD_COLUMNS}
    values.update(
        id=uuid.uuid4(),
        status="available",
        status_changed_at=now,
        exclusivity="exclusive",
        max_sales=1,
        sales_count=0,
        merged_into_id=None,
        quality_score=50,
        fraud_score=0.0,
        fraud_reasons=[],
        fraud_model_version=None,
        fraud_features={},
        problems=[],
        source=source,
        source_key=key,
        source_count=1,
        provenance={},
        attributes=fields.get("attributes") or {},
        source_updated_at=updated,
        created_at=now,
        updated_at=now,
    )
    return values


def worker_chunk(chunk: list[Item]) -> list[Any]:
    """Per record: (entity_id, lead row | None, lead id | reason skipped, key rows, agree),
    where `agree` says whether the fast normaliser's keys equal clean's (None: not checked)."""
    out: list[Any] = []
    conv = _W["converters"]
    uuid_conv = (lambda v: v.hex) if _W["kind"] == "sqlite" else (lambda v: v)
    fast_mode = _W["rows"] == "fast"
    enrich: Enrich | None = _W["enrich"]
    for entity_id, source, key, payload, updated in chunk:
        agree: bool | None = None
        if fast_mode and not probe_eligible(entity_id):
            f = fast_fields(payload, source)
        else:
            f = clean_record(source, key, payload, updated)
            if fast_mode and f is not None and _W["keys"]:
                fast = fast_fields(payload, source)
                agree = fast is not None and dedup.match_keys(fast) == dedup.match_keys(f)
        if f is None:
            out.append((entity_id, None, CLEAN_ERROR, None, agree))
            continue
        values = lead_values(f, source, key, updated)
        if enrich is not None:
            enrich(values, random.Random(key))
        dedup.derive_public(values)
        too_long = [
            f"{k}={v!r}"
            for k, n in _LENGTHS.items()
            if isinstance(v := values.get(k), str) and len(v) > n
        ]
        if too_long:
            reason = "value longer than its column: " + ", ".join(too_long)
            out.append((entity_id, None, reason, None, agree))
            continue
        row = tuple(
            (fn(values.get(name)) if fn is not None else values.get(name))
            for name, fn in zip(LEAD_COLUMNS, conv, strict=True)
        )
        lead_id = values["id"]
        keys = [(k, uuid_conv(lead_id)) for k in sorted(dedup.match_keys(f))] if _W["keys"] else []
        out.append((entity_id, row, lead_id, keys, agree))
    return out


# --------------------------------------------------------------------------------------------
# Main side: stream -> workers -> bulk writes
# --------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    stored: dict[str, uuid.UUID] = field(default_factory=dict)  # entity_id -> lead id
    keys: int = 0
    rejected: int = 0
    too_long: list[str] = field(default_factory=list)
    agree: int = 0
    checked: int = 0
    generated: int = 0
    dup_candidates: list[synthetic.SyntheticRecord] = field(default_factory=list)
    dup_seen: int = 0
    seconds: float = 0.0
    finish_seconds: float = 0.0  # VACUUM ANALYZE + CHECKPOINT, or FTS rebuild + checkpoint
    main_seconds: dict[str, float] = field(default_factory=dict)
    finish_parts: dict[str, float] = field(default_factory=dict)

    def finish_text(self, quote: str = "") -> str:
        """What followed the rows, e.g. "7 s VACUUM ANALYZE + 1 s CHECKPOINT"."""
        return " + ".join(f"{s:.0f} s {quote}{k}{quote}" for k, s in self.finish_parts.items())


class Writer:
    """Bulk inserts: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, db: c.BenchDatabase) -> None:
        self.db = db
        self.pg: Any = None
        self.lite: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.db.kind == "postgresql":
            import asyncpg

            self.pg = await asyncpg.connect(self.db.asyncpg_dsn)
        else:
            self._text_index("drop")
            self.lite = sqlite3.connect(self.db.name, isolation_level=None)
            self.lite.execute("PRAGMA journal_mode=WAL")
            self.lite.execute("PRAGMA synchronous=OFF")
            self.lite.execute("PRAGMA foreign_keys=ON")

    def _text_index(self, action: str) -> None:
        """SQLite's FTS5 index of leads and its triggers, dropped or created (and rebuilt) by
        the migration's own code, so the load does not feed the index row by row."""
        from aiqleads.kit import dialect

        engine = sa.create_engine(f"sqlite:///{self.db.name}")
        try:
            with engine.begin() as conn:
                if action == "drop":
                    dialect.drop_lead_search(conn)
                else:
                    dialect.create_lead_search(conn)
        finally:
            engine.dispose()

    async def write(self, leads: list[tuple[Any, ...]], keys: list[tuple[str, Any]]) -> None:
        if self.pg is not None:
            async with self.pg.transaction():
                await self.pg.copy_records_to_table("leads", records=leads, columns=LEAD_COLUMNS)
                if keys:
                    await self.pg.copy_records_to_table(
                        "lead_match_keys", records=keys, columns=KEY_COLUMNS
                    )
        else:
            assert self.lite is not None
            cols = ", ".join(f'"{n}"' for n in LEAD_COLUMNS)
            marks = ", ".join("?" for _ in LEAD_COLUMNS)
            self.lite.execute("BEGIN")
            self.lite.executemany(f"INSERT INTO leads ({cols}) VALUES ({marks})", leads)
            if keys:
                self.lite.executemany(
                    "INSERT OR IGNORE INTO lead_match_keys (key, lead_id) VALUES (?, ?)", keys
                )
            self.lite.execute("COMMIT")

    async def finish(self) -> dict[str, float]:
        """What follows the rows: seconds per step."""
        parts: dict[str, float] = {}
        t0 = time.perf_counter()
        if self.pg is not None:
            await self.pg.execute("VACUUM ANALYZE leads")
            await self.pg.execute("VACUUM ANALYZE lead_match_keys")
            parts["VACUUM ANALYZE"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            # Flush the load's dirty pages now, not in the middle of the measurement.
            await self.pg.execute("CHECKPOINT")
            parts["CHECKPOINT"] = time.perf_counter() - t0
            await self.pg.close()
        elif self.lite is not None:
            self.lite.close()
            self._text_index("create")
            parts["FTS5 rebuild"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            # A full ANALYZE, as ingestion's `kit.dialect.Statistics` runs while a store grows.
            lite = sqlite3.connect(self.db.name, isolation_level=None)
            try:
                lite.execute(SQLITE_FULL_ANALYSIS)
                lite.execute("ANALYZE")
                parts["ANALYZE"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                parts["WAL checkpoint"] = time.perf_counter() - t0
            finally:
                lite.close()
        return parts


def chunks_of(
    stream: Iterator[synthetic.SyntheticRecord],
    loaded: Loaded,
    seen: set[str],
    rng: random.Random,
    reservoir: int,
) -> Iterator[list[Item]]:
    """First copies of entities, in chunks for the workers; later copies feed the reservoir
    of duplicate-probe candidates (uniform over the whole stream)."""
    chunk: list[Item] = []
    for rec in stream:
        loaded.generated += 1
        if rec.entity_id in seen:
            loaded.dup_seen += 1
            if len(loaded.dup_candidates) < reservoir:
                loaded.dup_candidates.append(rec)
            else:
                j = rng.randrange(loaded.dup_seen)
                if j < reservoir:
                    loaded.dup_candidates[j] = rec
            continue
        seen.add(rec.entity_id)
        r = rec.record
        assert r.source_updated_at is not None
        chunk.append((rec.entity_id, rec.source, r.source_key, r.payload, r.source_updated_at))
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def load(
    db: c.BenchDatabase,
    pool: Any,
    stream: Iterator[synthetic.SyntheticRecord],
    seen: set[str],
    *,
    target: int,
    workers: int,
    seed: int,
    reservoir: int = 0,
    report_every: float = 60.0,
) -> Loaded:
    """Store `target` leads from `stream` (rows built by `pool`, a pool of `worker_init`ed
    processes running `worker_chunk`)."""
    loaded = Loaded()
    writer = Writer(db)
    await writer.open()
    rng = random.Random(seed)
    chunks = chunks_of(stream, loaded, seen, rng, reservoir=reservoir)
    inflight: deque[Any] = deque()
    leads_buf: list[tuple[Any, ...]] = []
    keys_buf: list[tuple[str, Any]] = []
    start = last_report = time.perf_counter()
    done = False

    async def flush() -> None:
        if leads_buf:
            await writer.write(leads_buf, keys_buf)
            leads_buf.clear()
            keys_buf.clear()

    spent = {"generate": 0.0, "wait": 0.0, "write": 0.0}
    while not done:
        t0 = time.perf_counter()
        while len(inflight) < 3 * workers:
            chunk = next(chunks, None)
            if chunk is None:
                break
            inflight.append(pool.apply_async(worker_chunk, (chunk,)))
        t1 = time.perf_counter()
        spent["generate"] += t1 - t0
        if not inflight:
            break
        results = inflight.popleft().get()
        spent["wait"] += time.perf_counter() - t1
        for entity_id, row, lead_id, keys, agree in results:
            if agree is not None:
                loaded.checked += 1
                loaded.agree += agree
            if row is None:
                if lead_id == CLEAN_ERROR:
                    loaded.rejected += 1
                else:
                    loaded.too_long.append(lead_id)
                continue
            loaded.stored[entity_id] = lead_id
            leads_buf.append(row)
            keys_buf.extend(keys)
            loaded.keys += len(keys)
            if len(loaded.stored) >= target:
                done = True
                break
        if len(leads_buf) >= FLUSH or done:
            t2 = time.perf_counter()
            await flush()
            spent["write"] += time.perf_counter() - t2
        now = time.perf_counter()
        if now - last_report > report_every:
            last_report = now
            n = len(loaded.stored)
            print(
                f"  {n:>9,} leads"
                + (f" {loaded.keys:>10,} keys" if loaded.keys else "")
                + f"  {now - start:6.0f} s  {n / (now - start):6.0f} leads/s  main: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()),
                flush=True,
            )
    await flush()
    loaded.seconds = time.perf_counter() - start
    loaded.main_seconds = spent
    loaded.finish_parts = await writer.finish()
    loaded.finish_seconds = sum(loaded.finish_parts.values())
    return loaded
