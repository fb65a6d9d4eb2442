"""The ingestion pipeline over one batch of raw records:

parse -> normalise -> geocode -> market -> validate -> de-duplicate -> fraud score -> persist.

Each stage is a small function in `quality` (tested on its own); this module strings them
together and does the batch's database work in a few set-based queries. A record that cannot
be parsed or fails validation is stored with its coded reasons and raw payload, never dropped;
a record seen before byte for byte creates nothing (idempotent on source key + content hash).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.ingest.connectors.base import Candidate, ParseError, RawRecord, storable
from aiqleads.ingest.models import Outcome, SourceRecord
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.sources import SourceCatalog, SourceConfig
from aiqleads.kit.clock import Clock
from aiqleads.leads.lifecycle import LeadStatus, check_transition
from aiqleads.leads.models import Exclusivity, MatchStatus
from aiqleads.leads.repository import LeadRepository
from aiqleads.markets.catalog import DEFAULT_FRAUD_THRESHOLD, MarketCatalog
from aiqleads.quality import dedup, fraud
from aiqleads.quality.clean import Cleaned, Fields, clean
from aiqleads.quality.problems import Problem, error
from aiqleads.quality.score import quality_score

log = structlog.get_logger(__name__)

Parser = Callable[[RawRecord], Candidate]
IP_WINDOW = timedelta(hours=1)
_DATETIME_FIELDS = ("consent_captured_at",)
# Normalised values that are working state, not lead columns.
_NOT_COLUMNS = frozenset({"email_disposable", "market_hint", "attributes"})
MAX_SOURCE_KEY: int = SourceRecord.__table__.c.source_key.type.length  # type: ignore[attr-defined]


def stored_key(source_key: str) -> str:
    """The source key as stored: a key longer than its column keeps its start and gains a hash
    of the whole, so it stays unique and the same on every run."""
    if len(source_key) <= MAX_SOURCE_KEY:
        return source_key
    digest = hashlib.sha256(source_key.encode()).hexdigest()
    return f"{source_key[: MAX_SOURCE_KEY - len(digest) - 1]}~{digest}"


def fields_from_json(data: dict[str, Any]) -> Fields:
    """A record's stored fields (JSON columns write datetimes in ISO 8601) back to values."""
    out = dict(data)
    for name in _DATETIME_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = datetime.fromisoformat(out[name])
    return out


def problems_from_json(rows: Sequence[dict[str, Any]]) -> list[Problem]:
    return [
        Problem(r["code"], r["message"], r.get("field"), r.get("severity", "error")) for r in rows
    ]


@dataclass
class BatchCounts:
    """What happened to a batch, added into the run's totals."""

    outcomes: Counter[str] = field(default_factory=Counter)
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)
    # Per record (in input order, unchanged ones left out): key, outcome, lead, problems.
    results: list[tuple[str, Outcome, uuid.UUID | None, list[Problem]]] = field(
        default_factory=list
    )


# A lead on sale with no current record behind it any more expires (off sale, but not for
# good: withdrawn is final, and a record can come back, a relisted home or a typo mended);
# one in a cart or bought stays as it is (the buyer's checkout or purchase decides), and one
# held for review stays there.
_OFF_SALE_WHEN_UNSUPPORTED = frozenset({LeadStatus.AVAILABLE})


@dataclass
class _Item:
    raw: RawRecord
    hash: str
    record_id: uuid.UUID
    previous: SourceRecord | None
    reuse_row: bool = False
    cleaned: Cleaned | None = None
    problems: list[Problem] = field(default_factory=list)
    outcome: Outcome = Outcome.ACCEPTED
    lead_id: uuid.UUID | None = None
    keys: set[str] = field(default_factory=set)
    # Leads this record resembles without matching: an operator decides (possible duplicates).
    possible: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Prepared:
    """A batch after the database-free stages, ready for `LeadPipeline.store`."""

    items: list[_Item] = field(default_factory=list)
    fetched: int = 0
    repeated: int = 0  # versions of a record followed by a later one in the same batch
    high_water_mark: datetime | None = None


# Parsing and cleaning run on one worker thread: off the event loop (requests keep being
# served while a run cleans a batch) and never two at once (the address tagger is not meant to
# be shared between threads).
_PREPARER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aiqleads-prepare")


def prepare_soon(
    prepare: Callable[[Sequence[RawRecord]], Prepared], batch: Sequence[RawRecord]
) -> asyncio.Future[Prepared]:
    """Start preparing `batch` on the preparing thread now; await the future for it."""
    context = contextvars.copy_context()  # keeps the log context (run, source) in the thread
    return asyncio.get_running_loop().run_in_executor(_PREPARER, context.run, prepare, batch)


@dataclass
class _Lead:
    """A lead this batch creates or changes, with everything survivorship needs."""

    id: uuid.UUID
    is_new: bool
    status: LeadStatus
    contributions: list[dedup.Contribution]
    problems: list[Problem]
    fields: Fields = field(default_factory=dict)
    # Why the lead was held for review in this batch (fraud score above the threshold).
    hold: Problem | None = None
    # Whether a current record fed it before this batch (one that expired for want of any,
    # `_reconsider`, goes back on sale when a record comes back).
    had_records: bool = True
    revived: bool = False


class Preparer:
    """The database-free stages of one source's batches (thread-safe: no session, no state)."""

    def __init__(self, source: SourceConfig, parse: Parser, markets: MarketCatalog) -> None:
        self.source = source
        self.parse = parse
        self.markets = markets

    def prepare(self, batch: Sequence[RawRecord]) -> Prepared:
        """The database-free half of a batch: hash, parse, normalise, geocode, validate and
        blocking keys of every record. It touches no session, so it runs off the event loop and
        before the batch's transaction opens (see `prepare_soon`)."""
        prepared = Prepared()
        records: list[tuple[RawRecord, str]] = []
        for raw in batch:
            prepared.fetched += 1
            if raw.source_updated_at and (
                prepared.high_water_mark is None or raw.source_updated_at > prepared.high_water_mark
            ):
                prepared.high_water_mark = raw.source_updated_at
            if len(raw.source_key) > MAX_SOURCE_KEY:
                raw = dataclasses.replace(raw, source_key=stored_key(raw.source_key))
            payload, digest = storable(raw.payload)
            if payload is not raw.payload or "\x00" in raw.source_key:
                key = raw.source_key.replace("\x00", "\ufffd")
                raw = dataclasses.replace(raw, payload=payload, source_key=key)
            records.append((raw, digest))
        # One version per record and batch, the last: a source that sends a record twice in
        # a batch (pages that overlap, an export with a row repeated) changed it in between,
        # or not at all. Both versions stored as current would feed the lead twice.
        last = {raw.source_key: n for n, (raw, _) in enumerate(records)}
        for n, (raw, digest) in enumerate(records):
            if last[raw.source_key] != n:
                prepared.repeated += 1
                continue
            item = _Item(raw, digest, uuid.uuid4(), None)
            self._parse_and_clean(item)
            prepared.items.append(item)
        return prepared

    def _parse_and_clean(self, item: _Item) -> None:
        try:
            candidate = self.parse(item.raw)
        except ParseError as exc:
            item.outcome = Outcome.FAILED
            item.problems = [error(exc.code, exc.message, exc.field)]
            return
        except Exception as exc:  # a connector bug must cost one record, not the run
            log.exception("parser_crashed", source=self.source.slug, key=item.raw.source_key)
            item.outcome = Outcome.FAILED
            item.problems = [error("parser_crashed", f"{type(exc).__name__}: {exc}")]
            return
        if candidate.market is None and self.source.market:
            candidate.market = self.source.market
        try:
            item.cleaned = clean(candidate, self.source.default_kind, self.markets)
            if not item.cleaned.errors:
                item.keys = dedup.match_keys(item.cleaned.fields)
        except Exception as exc:  # a value no stage foresaw: one record, not the batch
            log.exception("clean_crashed", source=self.source.slug, key=item.raw.source_key)
            item.cleaned = None
            item.outcome = Outcome.FAILED
            item.problems = [error("clean_crashed", f"{type(exc).__name__}: {exc}")]
            return
        item.problems = item.cleaned.problems
        if item.cleaned.errors:
            item.outcome = Outcome.QUARANTINED


class LeadPipeline:
    """Runs batches of one source's raw records through every stage."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        source: SourceConfig | None,
        parse: Parser | None,
        markets: MarketCatalog,
        model: fraud.FraudModel,
        clock: Clock,
        run_id: uuid.UUID | None = None,
        replay: bool = False,
        sources: SourceCatalog | None = None,
    ) -> None:
        self.session = session
        # A pipeline without a source only rebuilds existing leads (operators' merges).
        self._source = source
        self.preparer = Preparer(source, parse, markets) if source and parse else None
        self.markets = markets
        self.model = model
        self.clock = clock
        self.run_id = run_id
        self.replay = replay
        self.leads = LeadRepository(session)
        self.records = IngestRepository(session)
        # Sources whose leads must carry consent (web forms, lead ads): a lead with a record
        # from one of them is judged on its consent, whoever rebuilds it.
        self.consent_sources = (
            {s.slug for s in sources.all() if s.consent_required} if sources else set()
        )
        if source is not None and source.consent_required:
            self.consent_sources.add(source.slug)

    @property
    def source(self) -> SourceConfig:
        if self._source is None:
            raise RuntimeError("this pipeline only rebuilds leads")
        return self._source

    async def process(self, batch: Sequence[RawRecord]) -> BatchCounts:
        """Ingest one batch in the caller's transaction."""
        if self.preparer is None:
            raise RuntimeError("this pipeline only rebuilds leads")
        return await self.store(await prepare_soon(self.preparer.prepare, batch))

    async def store(self, prepared: Prepared) -> BatchCounts:
        """The database half: match, score and persist a prepared batch in the caller's
        transaction."""
        counts = BatchCounts()
        counts.outcomes["fetched"] += prepared.fetched
        counts.outcomes[Outcome.UNCHANGED.value] += prepared.repeated
        now = self.clock.now()
        items = await self._new_items(prepared.items, counts)
        valid = [i for i in items if i.outcome is Outcome.ACCEPTED]
        leads = await self._resolve(valid, now)
        await self._reconsider(items, leads, now)
        await self._score(leads, now)
        for item in valid:
            lead = leads[item.lead_id] if item.lead_id else None
            if lead and lead.is_new and lead.hold is not None:
                item.outcome = Outcome.QUARANTINED
                item.problems = [*item.problems, lead.hold]
        await self._persist(items, leads, now)
        # Back on sale now (saved searches announce leads by when they went on sale).
        revived = [
            k for k, lead in leads.items() if lead.revived and lead.status is LeadStatus.AVAILABLE
        ]
        await self.leads.set_status(revived, LeadStatus.AVAILABLE, now)
        for item in items:
            counts.outcomes[item.outcome.value] += 1
            if item.outcome in (Outcome.QUARANTINED, Outcome.FAILED):
                for p in item.problems:
                    if p.severity == "error":
                        counts.quarantined_by_reason[p.code] += 1
            counts.results.append((item.raw.source_key, item.outcome, item.lead_id, item.problems))
        return counts

    async def rebuild(self, statuses: dict[uuid.UUID, LeadStatus]) -> None:
        """Recompute golden records, keys and scores of existing leads from their current
        records (after an operator merges or splits them)."""
        now = self.clock.now()
        leads = {
            lead_id: _Lead(lead_id, False, status, [], []) for lead_id, status in statuses.items()
        }
        await self._load_existing_contributions(leads, [])
        leads = {k: v for k, v in leads.items() if v.contributions}
        await self._score(leads, now)
        await self.leads.update_many(
            [
                {**self._lead_values(lead, now), "id": lead.id, "status": lead.status}
                for lead in leads.values()
            ]
        )
        for lead in leads.values():
            keys = set().union(*(dedup.match_keys(c.fields) for c in lead.contributions))
            await self.leads.replace_keys(lead.id, keys)

    async def _new_items(self, prepared: list[_Item], counts: BatchCounts) -> list[_Item]:
        """Drop the records we already hold byte for byte; link new versions to the old."""
        existing = await self.records.current_records(
            self.source.slug, [i.raw.source_key for i in prepared]
        )
        items: list[_Item] = []
        for item in prepared:
            previous = existing.get(item.raw.source_key)
            if previous is not None and previous.content_hash == item.hash:
                retry = self.replay and previous.outcome in (Outcome.QUARANTINED, Outcome.FAILED)
                if not retry:
                    counts.outcomes[Outcome.UNCHANGED.value] += 1
                    continue
                item.record_id, item.reuse_row = previous.id, True
                if previous.lead_id is not None:  # held back for fraud: judge its lead again
                    item.previous = previous
            else:
                item.previous = previous
            items.append(item)
        # A version we held before and superseded comes back in its old row (the unique
        # (source, key, hash) allows one row per version), current again.
        changed = [(i.raw.source_key, i.hash) for i in items if i.previous is not None]
        if changed:
            earlier = await self.records.earlier_versions(self.source.slug, changed)
            for item in items:
                if (row_id := earlier.get((item.raw.source_key, item.hash))) is not None:
                    item.record_id, item.reuse_row = row_id, True
        return items

    async def _reconsider(
        self, items: list[_Item], leads: dict[uuid.UUID, _Lead], now: datetime
    ) -> None:
        """Leads whose record this batch replaced with a version that is no lead (a listing
        now closed, a record now invalid): rebuilt from their other sources' current records,
        or, with none left, taken off sale (expired) unless a buyer holds or bought them or
        they wait for review."""
        lost = {
            i.previous.lead_id
            for i in items
            if i.outcome in (Outcome.QUARANTINED, Outcome.FAILED)
            and i.previous is not None
            and i.previous.lead_id is not None
            and i.previous.lead_id not in leads
        }
        if not lost:
            return
        stored = await self.leads.compare_fields(lost)
        rebuilt = {
            lead_id: _Lead(lead_id, False, LeadStatus(row["status"]), [], [])
            for lead_id, row in stored.items()
            if not row.get("merged_into_id")
        }
        await self._load_existing_contributions(rebuilt, items)
        leads.update({k: lead for k, lead in rebuilt.items() if lead.contributions})
        unsupported = []
        for lead_id, lead in rebuilt.items():
            if not lead.contributions and lead.status in _OFF_SALE_WHEN_UNSUPPORTED:
                check_transition(lead.status, LeadStatus.EXPIRED)
                unsupported.append(lead_id)
        await self.leads.set_status(unsupported, LeadStatus.EXPIRED, now)

    def _contribution(self, item: _Item, now: datetime) -> dedup.Contribution:
        assert item.cleaned is not None
        return dedup.Contribution(
            str(item.record_id),
            self.source.slug,
            item.raw.source_key,
            self.source.trust,
            item.raw.source_updated_at or now,
            item.cleaned.fields,
        )

    async def _resolve(self, items: list[_Item], now: datetime) -> dict[uuid.UUID, _Lead]:
        """Attach each valid record to the lead it duplicates, or to a new lead."""
        all_keys = [k for i in items for k in i.keys]
        stored = await self.leads.leads_by_keys(all_keys)
        previous_leads = {i.previous.lead_id for i in items if i.previous and i.previous.lead_id}
        compare = await self.leads.compare_fields(
            {lead_id for ids in stored.values() for lead_id in ids} | previous_leads
        )
        in_batch: dict[str, set[uuid.UUID]] = defaultdict(set)
        touched: dict[uuid.UUID, _Lead] = {}

        for item in items:
            assert item.cleaned is not None
            f = item.cleaned.fields
            target: uuid.UUID | None = None
            if item.previous is not None and item.previous.lead_id is not None:
                target = item.previous.lead_id  # a new version of a record we hold
                item.outcome = Outcome.UPDATED
            else:
                target = self._best_match(item, f, stored, in_batch, compare, touched, now)
            if target is None:
                target = uuid.uuid4()
                touched[target] = _Lead(target, True, LeadStatus.AVAILABLE, [], [])
            elif target not in touched:
                status = (
                    LeadStatus(compare[target]["status"])
                    if target in compare
                    else LeadStatus.AVAILABLE
                )
                touched[target] = _Lead(target, False, status, [], [])
            lead = touched[target]
            lead.contributions.append(self._contribution(item, now))
            lead.problems += item.problems
            item.lead_id = target
            if not lead.is_new and item.outcome is Outcome.ACCEPTED:
                item.outcome = Outcome.MERGED
            elif lead.is_new and len(lead.contributions) > 1:
                item.outcome = Outcome.MERGED
            for key in item.keys:
                in_batch[key].add(target)

        await self._load_existing_contributions(touched, items)
        return touched

    def _best_match(
        self,
        item: _Item,
        f: Fields,
        stored: dict[str, set[uuid.UUID]],
        in_batch: dict[str, set[uuid.UUID]],
        compare: dict[uuid.UUID, dict[str, Any]],
        touched: dict[uuid.UUID, _Lead],
        now: datetime,
    ) -> uuid.UUID | None:
        shared: dict[uuid.UUID, set[str]] = defaultdict(set)
        for key in item.keys:
            for lead_id in stored.get(key, set()) | in_batch.get(key, set()):
                shared[lead_id].add(dedup.key_kind(key))
        best: tuple[float, uuid.UUID] | None = None
        possible: list[tuple[float, uuid.UUID, tuple[str, ...]]] = []
        for lead_id, kinds in shared.items():
            other = self._fields_of(lead_id, compare, touched)
            if other is None:
                continue
            result = dedup.compare(f, other, kinds)
            if result.decision is dedup.Decision.MATCH:
                if best is None or result.score > best[0]:
                    best = (result.score, lead_id)
            elif result.decision is dedup.Decision.POSSIBLE:
                possible.append((result.score, lead_id, result.reasons))
        if best is not None:
            return best[1]
        item.possible = [
            {"other_lead_id": lead_id, "score": round(score, 3), "reasons": list(reasons)}
            for score, lead_id, reasons in possible
        ]
        return None

    @staticmethod
    def _fields_of(
        lead_id: uuid.UUID,
        compare: dict[uuid.UUID, dict[str, Any]],
        touched: dict[uuid.UUID, _Lead],
    ) -> Fields | None:
        lead = touched.get(lead_id)
        if lead is not None and lead.is_new:
            return lead.contributions[0].fields
        row = compare.get(lead_id)
        if row is None or row.get("merged_into_id"):
            return None
        return row

    async def _load_existing_contributions(
        self, touched: dict[uuid.UUID, _Lead], items: list[_Item]
    ) -> None:
        existing = [lead_id for lead_id, lead in touched.items() if not lead.is_new]
        if not existing:
            return
        replaced = {i.previous.id for i in items if i.previous is not None}
        records = await self.records.contributions(existing)
        fed = {record.lead_id for record in records}
        for lead_id in existing:
            touched[lead_id].had_records = lead_id in fed
        for record in records:
            if record.id in replaced or record.fields is None or record.lead_id is None:
                continue
            lead = touched[record.lead_id]
            lead.contributions.append(
                dedup.Contribution(
                    str(record.id),
                    record.source,
                    record.source_key,
                    record.trust,
                    record.source_updated_at or record.received_at,
                    fields_from_json(record.fields),
                )
            )
            lead.problems += problems_from_json(record.problems)

    async def _score(self, leads: dict[uuid.UUID, _Lead], now: datetime) -> None:
        """Golden record, fraud score, quality score and status for every touched lead."""
        for lead in leads.values():
            lead.fields, provenance = dedup.survive(lead.contributions)
            lead.fields["provenance"] = provenance
            if not lead.had_records and lead.status is LeadStatus.EXPIRED:
                check_transition(lead.status, LeadStatus.AVAILABLE)  # a record came back
                lead.status, lead.revived = LeadStatus.AVAILABLE, True
        ips = [
            lead.fields["consent_ip"] for lead in leads.values() if lead.fields.get("consent_ip")
        ]
        recent = await self.leads.recent_ip_counts(ips, now - IP_WINDOW)
        batch_ips = Counter(
            lead.fields["consent_ip"]
            for lead in leads.values()
            if lead.is_new and lead.fields.get("consent_ip")
        )
        for lead in leads.values():
            f = lead.fields
            market = self.markets.get(f["market"]) if f.get("market") else None
            ip = f.get("consent_ip")
            ctx = fraud.Context(
                typical_price_cents=market.typical_list_price_cents if market else None,
                same_ip_last_hour=(recent.get(ip, 0) + batch_ips.get(ip, 0)) if ip else 0,
                consent_expected=any(c.source in self.consent_sources for c in lead.contributions),
                conflicting_duplicate=bool(dedup.conflicting_facts(lead.contributions)),
            )
            values = fraud.features(f, lead.problems, ctx)
            score, reasons = self.model.score(values)
            f["fraud_score"], f["fraud_reasons"] = score, reasons
            f["fraud_features"] = values
            f["quality_score"] = quality_score(
                f,
                lead.problems,
                max(c.trust for c in lead.contributions),
                max(c.seen_at for c in lead.contributions),
                now,
            )
            threshold = market.fraud_threshold if market else DEFAULT_FRAUD_THRESHOLD
            if score > threshold and lead.status is LeadStatus.AVAILABLE:
                if not lead.is_new:
                    check_transition(lead.status, LeadStatus.QUARANTINED)
                lead.status = LeadStatus.QUARANTINED
                lead.hold = error(
                    "fraud_suspected", f"fraud score {score:.2f} is above {threshold:.2f}"
                )
                lead.problems.append(lead.hold)

    def _lead_values(self, lead: _Lead, now: datetime) -> dict[str, Any]:
        f = lead.fields
        values = {k: v for k, v in f.items() if k not in _NOT_COLUMNS}
        unique: dict[str, dict[str, Any]] = {}
        for p in lead.problems:
            unique.setdefault(p.code, p.as_dict())
        values.update(
            attributes=f.get("attributes") or {},
            problems=list(unique.values()),
            fraud_model_version=self.model.version,
            source_count=len(lead.contributions),
            source_updated_at=max(c.seen_at for c in lead.contributions),
            updated_at=now,
        )
        return values

    async def _persist(
        self, items: list[_Item], leads: dict[uuid.UUID, _Lead], now: datetime
    ) -> None:
        new_rows, updates = [], []
        exclusivity = Exclusivity(self.source.options.get("exclusivity", "exclusive"))
        max_sales = int(
            self.source.options.get("max_sales", 1 if exclusivity is Exclusivity.EXCLUSIVE else 3)
        )
        for lead in leads.values():
            values = self._lead_values(lead, now)
            if lead.is_new:
                first = lead.contributions[0]
                values.update(
                    id=lead.id,
                    status=lead.status,
                    status_changed_at=now,
                    exclusivity=exclusivity,
                    max_sales=max_sales,
                    sales_count=0,
                    source=first.source,
                    source_key=first.source_key,
                    created_at=now,
                )
                new_rows.append(values)
            else:
                values["id"] = lead.id
                values["status"] = lead.status
                updates.append(values)
        await self.leads.insert_many(new_rows)
        await self.leads.update_many(updates)
        await self.leads.add_keys(
            (key, item.lead_id) for item in items if item.lead_id for key in item.keys
        )
        await self.records.supersede([i.previous.id for i in items if i.previous is not None])
        record_rows, replayed_rows = [], []
        for item in items:
            row = {
                "id": item.record_id,
                "source": self.source.slug,
                "source_key": item.raw.source_key,
                "content_hash": item.hash,
                # JSON columns encode what plain JSON lacks (datetimes in ISO 8601, the
                # rest as strings): see kit.db.json_dumps.
                "payload": item.raw.payload,
                "fields": item.cleaned.fields if item.cleaned else None,
                "problems": [p.as_dict() for p in item.problems],
                "outcome": item.outcome,
                "current": True,
                "trust": self.source.trust,
                "lead_id": item.lead_id,
                "run_id": self.run_id,
                "received_at": now,
                "source_updated_at": item.raw.source_updated_at,
            }
            if item.reuse_row:
                if self.replay:
                    # A replayed record stays listed under the run that brought it in (a
                    # version that came back is listed under the run it came back in).
                    row.pop("run_id")
                replayed_rows.append(row)
            else:
                record_rows.append(row)
        await self.records.insert_records(record_rows)
        await self.records.update_records(replayed_rows)
        possible = []
        for item in items:
            for match in item.possible:
                possible.append(
                    {
                        "id": uuid.uuid4(),
                        "lead_id": item.lead_id,
                        "status": MatchStatus.OPEN,
                        "created_at": now,
                        **match,
                    }
                )
        await self.leads.add_possible_duplicates(possible)
