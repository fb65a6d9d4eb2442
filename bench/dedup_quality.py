"""De-duplication quality through the real ingestion pipeline, on labelled synthetic records.

    .venv/bin/python bench/dedup_quality.py --count 12000 --seed 7 --database sqlite

1. `synthetic.generate(count, seed, fraud_rate=0)`: every record is a genuine entity; the
   default duplicate_rate (0.25) and household_rate (0.05) give copies of one person from
   several sources, corrupted independently, and second people at the same address.
2. The records are grouped by source and ingested with `run_source(records=...)`, one run per
   source in `DEMO_SOURCES` order (what `aiqleads demo load` does), into a fresh database.
3. `source_records` is read back (source, source_key -> lead_id): records sharing a lead_id
   are the predicted clusters; their pairs are compared with `synthetic.duplicate_pairs`
   (`score_pairs`) for precision, recall and F1. A record without a lead (quarantined by
   validation) is a singleton, so it only costs recall.

Target: precision >= 0.99 and F1 >= 0.97. The console also shows what the false negatives
have in common (fields that differ between the two copies, and what the matcher says about
the two records side by side) and example false-positive / false-negative pairs.
"""

# ruff: noqa: T201, E501
from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa

import _common as c
from aiqleads.ingest import synthetic
from aiqleads.ingest.models import Outcome, SourceRecord
from aiqleads.ingest.service import run_source
from aiqleads.leads.models import Lead, PossibleDuplicate
from aiqleads.leads.repository import COMPARE_COLUMNS
from aiqleads.quality import dedup

TARGET_PRECISION, TARGET_F1 = 0.99, 0.97


# --------------------------------------------------------------------------------------------
# Ingest and read back
# --------------------------------------------------------------------------------------------


async def ingest(runtime: Any, records: list[synthetic.SyntheticRecord]) -> dict[str, Any]:
    by_source: dict[str, list[Any]] = defaultdict(list)
    for rec in records:
        by_source[rec.source].append(rec.record)
    runs = {}
    start = time.perf_counter()
    for slug in synthetic.DEMO_SOURCES:
        source = runtime.sources.get(slug)
        if source is None or not by_source[slug]:
            continue
        t0 = time.perf_counter()
        run = await run_source(runtime, source, trigger="bench", records=by_source[slug])
        runs[slug] = (run.status.value, dict(run.counts), time.perf_counter() - t0)
        print(
            f"  {slug:<14} {len(by_source[slug]):>6} records  {runs[slug][2]:6.1f} s  {run.counts}"
        )
    return {"runs": runs, "seconds": time.perf_counter() - start}


async def read_back(runtime: Any) -> dict[str, Any]:
    async with runtime.transaction(write=False) as session:
        rows = (
            await session.execute(
                sa.select(
                    SourceRecord.source,
                    SourceRecord.source_key,
                    SourceRecord.lead_id,
                    SourceRecord.outcome,
                    SourceRecord.fields,
                    SourceRecord.problems,
                ).where(SourceRecord.current.is_(True))
            )
        ).all()
        possible = (
            await session.execute(
                sa.select(PossibleDuplicate.lead_id, PossibleDuplicate.other_lead_id)
            )
        ).all()
        lead_status = {
            lead_id: status
            for lead_id, status in (await session.execute(sa.select(Lead.id, Lead.status))).all()
        }
        golden = {
            row["id"]: dict(row)
            for row in (
                await session.execute(sa.select(*[getattr(Lead, col) for col in COMPARE_COLUMNS]))
            ).mappings()
        }
    return {"records": rows, "possible": possible, "lead_status": lead_status, "golden": golden}


# --------------------------------------------------------------------------------------------
# Diagnosis helpers
# --------------------------------------------------------------------------------------------


def _raw_name(payload: dict[str, Any]) -> tuple[str, str]:
    if payload.get("full_name"):
        parts = str(payload["full_name"]).split()
        return (parts[0] if parts else "", parts[-1] if len(parts) > 1 else "")
    return (
        str(payload.get("first_name") or "").strip(),
        str(payload.get("last_name") or "").strip(),
    )


def _digits(value: Any) -> str:
    d = "".join(ch for ch in str(value or "") if ch.isdigit())
    return d[-10:]


def name_differences(a: tuple[str, str], b: tuple[str, str]) -> list[str]:
    """How two written names differ: order, nickname, typo (case and spacing ignored)."""
    af, al = (x.strip().lower() for x in a)
    bf, bl = (x.strip().lower() for x in b)
    if (af, al) == (bf, bl):
        return []

    def sim(x: str, y: str) -> float:
        return dedup._sim(x, y) or 0.0  # noqa: SLF001

    straight = ((af == bf) + (al == bl), sim(af, bf) + sim(al, bl))
    swapped = ((af == bl) + (al == bf), sim(af, bl) + sim(al, bf))
    out = []
    if swapped > straight:
        out.append("name swapped")
        bf, bl = bl, bf
    other = 0
    for x, y in ((af, bf), (al, bl)):
        if x == y:
            continue
        if x and y and min(len(x), len(y)) > 1 and dedup.first_name_similarity(x, y) == 1.0:
            out.append("first name: nickname")
        else:
            other += 1
    if other:
        out.append(f"name: typo or other ({'both parts' if other == 2 else 'one part'})")
    return out


def differences(
    pa: dict[str, Any], pb: dict[str, Any], fa: dict[str, Any] | None, fb: dict[str, Any] | None
) -> list[str]:
    """What differs between two copies of one entity (raw payloads + normalised fields)."""
    out = []
    out += name_differences(_raw_name(pa), _raw_name(pb))
    pha, phb = _digits(pa.get("phone")), _digits(pb.get("phone"))
    if bool(pha) != bool(phb):
        out.append("phone missing in one")
    elif pha and pha != phb:
        out.append("phone differs")
    ea, eb = str(pa.get("email") or "").strip().lower(), str(pb.get("email") or "").strip().lower()
    if bool(ea) != bool(eb):
        out.append("email missing in one")
    elif ea and ea != eb:
        out.append("email differs")
    if fa is not None and fb is not None:
        ka, kb = dedup.address_key(fa), dedup.address_key(fb)
        if ka is None or kb is None:
            out.append("address unparsed in one")
        elif ka != kb:
            out.append("street differs (normalised)")
        ua, ub = fa.get("unit_number"), fb.get("unit_number")
        if bool(ua) != bool(ub):
            out.append("unit missing in one")
        elif ua and ua != ub:
            out.append("unit differs")
    if str(pa.get("postal_code") or "")[:5] != str(pb.get("postal_code") or "")[:5]:
        out.append("zip differs")
    return out or ["no visible difference"]


def record_verdict(fa: dict[str, Any] | None, fb: dict[str, Any] | None) -> str:
    """What dedup.compare says about the two records side by side."""
    if fa is None or fb is None:
        return "a record has no fields (failed)"
    shared = {dedup.key_kind(k) for k in dedup.match_keys(fa) & dedup.match_keys(fb)}
    if not shared:
        return "no shared blocking key"
    result = dedup.compare(fa, fb, shared)
    reasons = [r for r in result.reasons if not r.startswith("name_similarity")]
    sim = dedup.name_similarity(fa, fb)
    simtxt = f"name_sim={sim:.2f}" if sim is not None else "no names"
    return f"record-vs-record {result.decision.value} (shared {'+'.join(sorted(shared))}; {simtxt}; {','.join(reasons) or '-'})"


def snippet(rec: synthetic.SyntheticRecord, row: Any) -> str:
    p = rec.record.payload
    name = p.get("full_name") or f"{p.get('first_name')!s} / {p.get('last_name')!s}"
    unit = f" unit={p['unit']!r}" if p.get("unit") else ""
    lead = str(row.lead_id)[:8] if row is not None and row.lead_id else "-"
    outcome = row.outcome.value if row is not None else "?"
    return (
        f"{rec.source:<13} {rec.record.source_key:<16} {rec.entity_id}/{rec.household_id} "
        f"kind={p.get('kind')} name={name!r} phone={p.get('phone')!r} email={p.get('email')!r} "
        f"street={p.get('street')!r}{unit} zip={p.get('postal_code')!r} -> {outcome} lead={lead}"
    )


def _bucket(verdict: str) -> str:
    """The verdict without the per-pair numbers, for counting."""
    if "(" not in verdict:
        return verdict
    head, rest = verdict.split(" (", 1)
    shared = rest.split(";")[0]
    return f"{head} ({shared})"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--examples", type=int, default=10, help="FP/FN example pairs to print")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    c.quiet_logs()

    print(f"generating {args.count:,} labelled records (seed {args.seed}, fraud_rate=0) ...")
    t0 = time.perf_counter()
    records = synthetic.generate(args.count, seed=args.seed, fraud_rate=0.0, now=c.FROZEN_NOW)
    gen_s = time.perf_counter() - t0
    truth = synthetic.duplicate_pairs(records)
    households = synthetic.household_pairs(records)
    clusters = synthetic.entity_clusters(records)
    print(
        f"  {len(records):,} records, {len(clusters):,} entities, {len(truth):,} true duplicate "
        f"pairs, {len(households):,} same-household different-people pairs ({gen_s:.1f} s)"
    )

    db = c.fresh_database(args.database, f"dedup_quality_{args.database}")
    db_version = c.database_version(db)
    runtime = c.make_runtime(db)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            print(f"ingesting through run_source into {db.kind} ({db.name}) ...")
            ing = await ingest(runtime, records)
            back = await read_back(runtime)
            return ing, back
        finally:
            await runtime.shutdown()

    try:
        ing, back = asyncio.run(run())
    finally:
        if not args.keep:
            db.drop()

    # ---- predicted clusters ----------------------------------------------------------------
    index = {(r.source, r.record.source_key): i for i, r in enumerate(records)}
    row_of: dict[int, Any] = {}
    for row in back["records"]:
        i = index.get((row.source, row.source_key))
        if i is not None:
            row_of[i] = row
    missing_rows = len(records) - len(row_of)
    by_lead: dict[uuid.UUID, list[int]] = defaultdict(list)
    by_lead_strict: dict[uuid.UUID, list[int]] = defaultdict(list)
    for i, row in row_of.items():
        if row.lead_id is not None:
            by_lead[row.lead_id].append(i)
            if row.outcome is not Outcome.QUARANTINED:
                by_lead_strict[row.lead_id].append(i)
    predicted = synthetic._pairs(by_lead.values())  # noqa: SLF001 (the same pair helper as truth)
    score = synthetic.score_pairs(predicted, truth)
    strict = synthetic.score_pairs(synthetic._pairs(by_lead_strict.values()), truth)  # noqa: SLF001

    outcomes = Counter(row.outcome.value for row in row_of.values())
    quarantined = [i for i, row in row_of.items() if row.outcome is Outcome.QUARANTINED]
    q_no_lead = sum(1 for i in quarantined if row_of[i].lead_id is None)
    q_reasons: Counter[str] = Counter()
    for i in quarantined:
        for p in row_of[i].problems or []:
            if p.get("severity", "error") == "error":
                q_reasons[p["code"]] += 1
    # A lead quarantined for suspected fraud still exists: its records count by lead_id.
    lead_status = back["lead_status"]
    quarantined_leads = sum(
        1 for s in lead_status.values() if str(getattr(s, "value", s)) == "quarantined"
    )

    fp = predicted - truth
    fn = truth - predicted
    # Possible duplicates: do they point at the missed pairs? (an operator would merge them)
    lead_pairs_open = {frozenset((a, b)) for a, b in back["possible"]}
    fn_flagged = sum(
        1
        for pair in fn
        if (ids := [row_of[i].lead_id if i in row_of else None for i in pair])
        and None not in ids
        and frozenset(ids) in lead_pairs_open
    )
    exact_entities = 0
    lead_members = {lead: set(members) for lead, members in by_lead.items()}
    for members in clusters.values():
        leads = {row_of[i].lead_id for i in members if i in row_of}
        if (
            len(leads) == 1
            and None not in leads
            and lead_members[next(iter(leads))] == set(members)
        ):
            exact_entities += 1

    # ---- diagnosis --------------------------------------------------------------------------
    def fields_of(i: int) -> dict[str, Any] | None:
        row = row_of.get(i)
        return row.fields if row is not None else None

    fn_diff: Counter[str] = Counter()
    fn_combo: Counter[tuple[str, ...]] = Counter()
    fn_verdict: Counter[str] = Counter()
    fn_lead_verdict: Counter[str] = Counter()
    # Ingestion order (sources in DEMO_SOURCES order, records in list order) and lead keys.
    order = {i: (synthetic.DEMO_SOURCES.index(rec.source), i) for i, rec in enumerate(records)}
    lead_keys: dict[uuid.UUID, set[str]] = defaultdict(set)
    for row in row_of.values():
        if row.lead_id is not None and row.fields:
            lead_keys[row.lead_id] |= dedup.match_keys(row.fields)
    fn_examples: list[tuple[int, int, list[str], str]] = []
    for pair in sorted(fn, key=lambda p: sorted(p)):
        a, b = sorted(pair)
        ra, rb = row_of.get(a), row_of.get(b)
        unmatched = [x for x, r in ((a, ra), (b, rb)) if r is None or r.lead_id is None]
        if unmatched:
            diffs = ["record quarantined (no lead)"]
            verdict = "quarantined: " + ",".join(
                sorted(
                    {
                        p["code"]
                        for x in unmatched
                        for p in (row_of[x].problems or [])
                        if p.get("severity", "error") == "error"
                    }
                )
            )
        else:
            diffs = differences(
                records[a].record.payload, records[b].record.payload, fields_of(a), fields_of(b)
            )
            verdict = record_verdict(fields_of(a), fields_of(b))
            # What the later record meets: the earlier record's lead (its golden record as
            # stored at the end of the run, and the keys of all that lead's records).
            early, late = sorted((a, b), key=lambda x: order[x])
            other = row_of[early].lead_id
            fl = fields_of(late)
            if fl is not None and other in back["golden"]:
                shared = {dedup.key_kind(k) for k in dedup.match_keys(fl) & lead_keys[other]}
                got = dedup.compare(fl, back["golden"][other], shared).decision.value
                fn_lead_verdict[f"later record vs earlier record's lead: {got}"] += 1
        fn_diff.update(diffs)
        fn_combo[tuple(diffs)] += 1
        fn_verdict[_bucket(verdict)] += 1
        fn_examples.append((a, b, diffs, verdict))

    fp_kind: Counter[str] = Counter()
    fp_examples: list[tuple[int, int, str, str]] = []
    for pair in sorted(fp, key=lambda p: sorted(p)):
        a, b = sorted(pair)
        kind = "same household, different people" if pair in households else "different households"
        fp_kind[kind] += 1
        fp_examples.append((a, b, kind, record_verdict(fields_of(a), fields_of(b))))

    # ---- console ----------------------------------------------------------------------------
    ok = score.precision >= TARGET_PRECISION and score.f1 >= TARGET_F1
    print()
    print(f"records ingested          {len(row_of):,} ({missing_rows} not found in source_records)")
    print(f"outcomes                  {dict(outcomes)}")
    print(
        f"quarantined records       {len(quarantined)} ({q_no_lead} without a lead, counted unmatched; "
        f"{len(quarantined) - q_no_lead} on a lead held for fraud review) reasons={dict(q_reasons)}"
    )
    print(
        f"leads                     {len(lead_status):,} ({quarantined_leads} quarantined) for {len(clusters):,} entities; "
        f"{exact_entities:,} entities resolved exactly ({exact_entities / len(clusters):.2%})"
    )
    print(
        f"possible-duplicate rows   {len(back['possible'])} (covering {fn_flagged} of the {len(fn)} missed pairs)"
    )
    print(
        f"true pairs {len(truth):,}   predicted pairs {len(predicted):,}   TP {score.true_positives:,}  "
        f"FP {score.false_positives:,}  FN {score.false_negatives:,}"
    )
    print(
        f"PRECISION {score.precision:.4f}   RECALL {score.recall:.4f}   F1 {score.f1:.4f}   "
        f"(target precision >= {TARGET_PRECISION}, F1 >= {TARGET_F1}: {'PASS' if ok else 'MISS'})"
    )
    print(
        f"  if quarantined records on fraud-held leads also counted unmatched: precision {strict.precision:.4f} "
        f"recall {strict.recall:.4f} F1 {strict.f1:.4f}"
    )
    print(f"false merges: {dict(fp_kind)}")
    print(f"ingest time {ing['seconds']:.1f} s ({len(records) / ing['seconds']:.0f} records/s)")

    print(
        "\nFalse negatives by what differs between the two copies (a pair can count under several):"
    )
    for name, n in fn_diff.most_common():
        print(f"  {n:>5}  {name}")
    print("False negatives by combination of differences (top 12):")
    for combo, n in fn_combo.most_common(12):
        print(f"  {n:>5}  {' + '.join(combo)}")
    print("False negatives by what dedup.compare says about the two records side by side:")
    for name, n in fn_verdict.most_common(15):
        print(f"  {n:>5}  {name}")
    print(
        "  (a record-vs-record 'match' was missed because the record met the lead's golden record,"
    )
    print("   or a lead made earlier in the batch, not the other record)")
    print(
        "False negatives: the later record against the earlier record's lead (golden record at the end):"
    )
    for name, n in fn_lead_verdict.most_common():
        print(f"  {n:>5}  {name}")

    step = max(1, len(fp_examples) // args.examples) if fp_examples else 1
    print(
        f"\nExample false positives ({min(args.examples, len(fp_examples))} of {len(fp_examples)}):"
    )
    for a, b, kind, verdict in fp_examples[::step][: args.examples]:
        print(f"  [{kind}] {verdict}")
        print(f"    A {snippet(records[a], row_of.get(a))}")
        print(f"    B {snippet(records[b], row_of.get(b))}")
    print(
        f"\nExample false negatives ({min(args.examples, len(fn_examples))} of {len(fn_examples)}; spread over the causes):"
    )
    by_cause: dict[str, list[tuple[int, int, list[str], str]]] = defaultdict(list)
    for ex in fn_examples:
        by_cause[_bucket(ex[3])].append(ex)
    picked = list(
        itertools.islice(
            (
                ex
                for group in itertools.zip_longest(*by_cause.values())
                for ex in group
                if ex is not None
            ),
            args.examples,
        )
    )
    for a, b, diffs, verdict in picked:
        print(f"  [{', '.join(diffs)}] {verdict}")
        print(f"    A {snippet(records[a], row_of.get(a))}")
        print(f"    B {snippet(records[b], row_of.get(b))}")

    if args.no_docs:
        return
    lines = c.environment_lines([("Database", db_version)])
    lines += [
        "",
        f"Labelled set: `synthetic.generate({args.count}, seed={args.seed}, fraud_rate=0)` (default "
        "duplicate_rate 0.25, household_rate 0.05): "
        f"{len(records):,} records, {len(clusters):,} entities, {len(truth):,} true duplicate pairs, "
        f"{len(households):,} same-household different-people pairs. Ingested with `run_source` per "
        f"source in `DEMO_SOURCES` order in {ing['seconds']:.0f} s; predicted clusters are records "
        "sharing a `lead_id` in `source_records`.",
        "",
        *c.table(
            ["figure", "value"],
            [
                ["precision", f"{score.precision:.4f}"],
                ["recall", f"{score.recall:.4f}"],
                ["F1", f"{score.f1:.4f}"],
                ["true / predicted pairs", f"{len(truth):,} / {len(predicted):,}"],
                [
                    "TP / FP / FN",
                    f"{score.true_positives:,} / {score.false_positives:,} / {score.false_negatives:,}",
                ],
                [
                    "false merges: same household, different people",
                    fp_kind.get("same household, different people", 0),
                ],
                ["false merges: different households", fp_kind.get("different households", 0)],
                ["quarantined records (no lead, count as unmatched)", q_no_lead],
                [
                    "quarantined records on a fraud-held lead (counted by lead_id)",
                    len(quarantined) - q_no_lead,
                ],
                [
                    "possible-duplicate rows (covering missed pairs)",
                    f"{len(back['possible'])} ({fn_flagged})",
                ],
                [
                    "entities resolved exactly",
                    f"{exact_entities:,} of {len(clusters):,} ({exact_entities / len(clusters):.2%})",
                ],
                ["F1 if fraud-held quarantined records also count unmatched", f"{strict.f1:.4f}"],
            ],
        ),
        "",
        f"Target: precision >= {TARGET_PRECISION} and F1 >= {TARGET_F1}: "
        f"{c.verdict(ok)} (precision {'met' if score.precision >= TARGET_PRECISION else 'missed'}, "
        f"F1 {'met' if score.f1 >= TARGET_F1 else 'missed'}).",
        "",
        "False negatives by what differs between the two copies (one pair may count under several):",
        "",
        *c.table(["difference", "pairs"], fn_diff.most_common()),
        "",
        "False negatives by what `dedup.compare` says about the two records side by side:",
        "",
        *c.table(["verdict", "pairs"], fn_verdict.most_common(12)),
        "",
        "False negatives: the later record against the earlier record's lead (its golden record "
        "at the end of the run, and the keys of all its records):",
        "",
        *c.table(["verdict", "pairs"], fn_lead_verdict.most_common()),
    ]
    c.write_section(
        f"dedup_quality:{args.database}", f"De-duplication quality ({args.database})", lines
    )


if __name__ == "__main__":
    main()
