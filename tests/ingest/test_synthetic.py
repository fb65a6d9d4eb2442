"""The synthetic lead generator: reproducible, realistic, and with correct ground truth."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

import phonenumbers
import pytest
import zipcodes

from aiqleads.ingest.synthetic import (
    DEMO_SOURCES,
    SyntheticRecord,
    duplicate_pairs,
    generate,
    household_pairs,
    iter_generate,
    score_pairs,
)
from aiqleads.markets.catalog import load_markets

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DISPOSABLE_DOMAINS = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com")
TOLL_FREE = {"800", "888", "877"}
COUNT = 4000


@pytest.fixture(scope="module")
def records() -> list[SyntheticRecord]:
    return generate(COUNT, seed=11, now=NOW)


def _zip5(record: SyntheticRecord) -> str:
    return str(record.record.payload["postal_code"])[:5]


def _digits(phone: object) -> str:
    digits = "".join(ch for ch in str(phone or "") if ch.isdigit())
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _house_number(record: SyntheticRecord) -> str:
    return str(record.record.payload["street"]).split()[0]


def test_same_seed_same_records() -> None:
    a = generate(300, seed=3, now=NOW)
    b = generate(300, seed=3, now=NOW)
    assert a == b
    assert [r.record.payload for r in a] == [r.record.payload for r in b]
    c = generate(300, seed=4, now=NOW)
    assert [r.record.payload for r in a] != [r.record.payload for r in c]


def test_streaming_matches_list() -> None:
    assert list(iter_generate(250, seed=5, now=NOW)) == generate(250, seed=5, now=NOW)


def test_count_respected(records: list[SyntheticRecord]) -> None:
    assert len(records) == COUNT
    assert generate(0, now=NOW) == []
    assert len(generate(1, now=NOW)) == 1
    assert len(generate(17, seed=9, now=NOW)) == 17


def test_records_are_well_formed(records: list[SyntheticRecord]) -> None:
    keys = Counter((r.source, r.record.source_key) for r in records)
    assert max(keys.values()) == 1
    assert {r.source for r in records} == set(DEMO_SOURCES)
    json.dumps([r.record.payload for r in records])  # JSON-serialisable
    for r in records:
        payload = r.record.payload
        assert payload["market"] in {"las-vegas", "dallas-fort-worth", "austin", "phoenix"}
        assert r.record.source_updated_at is not None
        assert r.record.source_updated_at <= NOW
        if r.source in ("demo-webform", "demo-facebook") and not r.is_fraud:
            consent = payload["consent"]
            assert consent["captured_at"]
            assert consent["text"]
            assert consent["ip"]
            assert payload["submitted_ip"] == consent["ip"]
        if not r.is_fraud:
            assert "phone" in payload or "email" in payload


def test_genuine_phones_are_valid_us_numbers(records: list[SyntheticRecord]) -> None:
    codes = {
        "las-vegas": {"702", "725"},
        "dallas-fort-worth": {"214", "469", "972", "817", "682"},
        "austin": {"512", "737"},
        "phoenix": {"602", "480", "623"},
    }
    formats = set()
    checked = 0
    for r in records:
        phone = r.record.payload.get("phone")
        if r.is_fraud or phone is None:
            continue
        number = phonenumbers.parse(phone, "US")
        assert phonenumbers.is_valid_number(number), phone
        national = str(number.national_number)
        assert national[:3] in codes[r.record.payload["market"]]
        assert national[3:6] != "555"
        formats.add("".join("9" if ch.isdigit() else ch for ch in phone))
        checked += 1
    assert checked > COUNT * 0.7
    assert len(formats) >= 5  # "(702) 555-0143", "702.555.0143", "+17025550143", ...


def test_postal_codes_lie_in_their_market(records: list[SyntheticRecord]) -> None:
    markets = {m.slug: m for m in load_markets().all()}
    for z in {(_zip5(r), r.record.payload["market"]) for r in records}:
        code, slug = z
        market = markets[slug]
        (entry,) = zipcodes.matching(code)
        assert entry["state"] in market.states
        min_lon, min_lat, max_lon, max_lat = market.bbox
        assert min_lat <= float(entry["lat"]) <= max_lat
        assert min_lon <= float(entry["long"]) <= max_lon
    seen = Counter(r.record.payload["market"] for r in records)
    assert set(seen) == set(markets)


def test_market_filter() -> None:
    only = generate(200, seed=2, markets=["austin"], now=NOW)
    assert {r.record.payload["market"] for r in only} == {"austin"}
    with pytest.raises(ValueError, match="unknown market"):
        generate(10, markets=["atlantis"], now=NOW)


def test_duplicates_at_requested_rate(records: list[SyntheticRecord]) -> None:
    per_entity = Counter(r.entity_id for r in records if not r.is_fraud)
    duplicated = sum(1 for n in per_entity.values() if n > 1)
    assert 0.20 <= duplicated / len(per_entity) <= 0.30
    assert max(per_entity.values()) <= 4
    # Copies of one entity come from different sources.
    sources: defaultdict[str, list[str]] = defaultdict(list)
    for r in records:
        sources[r.entity_id].append(r.source)
    assert all(len(s) == len(set(s)) for s in sources.values())
    pairs = duplicate_pairs(records)
    assert pairs
    assert all(records[a].entity_id == records[b].entity_id for a, b in pairs)
    # The copies differ: at least some pairs have differently written names or phones.
    differing = sum(
        1
        for a, b in pairs
        if records[a].record.payload.get("phone") != records[b].record.payload.get("phone")
    )
    assert differing > len(pairs) * 0.5
    assert score_pairs(pairs, pairs).f1 == 1.0


def test_households_share_address_not_entity(records: list[SyntheticRecord]) -> None:
    pairs = household_pairs(records)
    assert pairs
    for a, b in pairs:
        ra, rb = records[a], records[b]
        assert ra.household_id == rb.household_id
        assert ra.entity_id != rb.entity_id
        assert _zip5(ra) == _zip5(rb)
        assert _house_number(ra) == _house_number(rb)
    households: defaultdict[str, set[str]] = defaultdict(set)
    for r in records:
        households[r.household_id].add(r.entity_id)
    shared = sum(1 for entities in households.values() if len(entities) > 1)
    assert 0.02 <= shared / len(households) <= 0.09


def test_fraud_present_with_signals(records: list[SyntheticRecord]) -> None:
    fraud = [r for r in records if r.is_fraud]
    assert 0.025 <= len(fraud) / len(records) <= 0.06
    # Fraud records are their own entities, never copies of a genuine lead.
    genuine_entities = {r.entity_id for r in records if not r.is_fraud}
    assert not {r.entity_id for r in fraud} & genuine_entities
    ips = Counter(r.record.payload.get("submitted_ip") for r in fraud)
    ips.pop(None, None)
    assert max(ips.values()) >= 5  # a ring submitting many forms from one address
    disposable = [
        r for r in fraud if str(r.record.payload.get("email")).endswith(DISPOSABLE_DOMAINS)
    ]
    toll_free = [r for r in fraud if _digits(r.record.payload.get("phone"))[:3] in TOLL_FREE]
    assert disposable
    assert toll_free
    genuine_ips = Counter(
        r.record.payload.get("submitted_ip")
        for r in records
        if not r.is_fraud and "submitted_ip" in r.record.payload
    )
    assert max(genuine_ips.values()) <= 8


def test_rates_can_be_switched_off() -> None:
    plain = generate(300, seed=1, duplicate_rate=0, fraud_rate=0, household_rate=0, now=NOW)
    assert not any(r.is_fraud for r in plain)
    assert len({r.entity_id for r in plain}) == len(plain)
    assert len({r.household_id for r in plain}) == len(plain)
    with pytest.raises(ValueError, match="duplicate_rate"):
        generate(10, duplicate_rate=1.5, now=NOW)
