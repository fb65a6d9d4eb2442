"""The ingestion pipeline end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import h3
import pytest
import sqlalchemy as sa

from aiqleads.ingest.models import Outcome, RunStatus, SourceRecord
from aiqleads.ingest.service import run_source
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead, LeadMatchKey, PossibleDuplicate
from aiqleads.quality.dedup import field_origins
from aiqleads.runtime import Runtime
from tests.ingest.factories import fake_lead, lookalike, seller

MLS = SourceConfig(slug="test-mls", name="Test MLS", type="demo", trust=0.9)
FORM = SourceConfig(
    slug="test-form",
    name="Test form",
    type="demo",
    trust=0.5,
    options={"consent_required": True},
)


async def leads(runtime: Runtime) -> list[Lead]:
    async with runtime.transaction(write=False) as session:
        return list(await session.scalars(sa.select(Lead).order_by(Lead.created_at)))


async def records(runtime: Runtime) -> list[SourceRecord]:
    async with runtime.transaction(write=False) as session:
        return list(await session.scalars(sa.select(SourceRecord)))


async def test_a_clean_record_becomes_an_available_lead(runtime: Runtime) -> None:
    run = await run_source(runtime, MLS, trigger="test", records=[seller("L1")])
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["accepted"] == 1
    [lead] = await leads(runtime)
    assert lead.status is LeadStatus.AVAILABLE
    assert (lead.first_name, lead.last_name) == ("Robert", "Johnson")
    assert lead.phone == "+17025550143"
    assert lead.email == "robert.johnson@gmail.com"
    assert lead.address == "4500 W SAHARA AVE APT 210, LAS VEGAS, NV 89102"
    assert lead.list_price_cents == 42_500_000
    assert lead.market == "las-vegas"
    assert lead.geocode_precision == "zip"
    assert lead.h3_r7
    assert lead.h3_r9
    assert lead.latitude is not None
    assert lead.longitude is not None
    assert h3.get_resolution(lead.h3_r7) == 7
    assert lead.h3_r9 == h3.latlng_to_cell(lead.latitude, lead.longitude, 9)
    assert lead.consent_captured_at is not None
    assert lead.consent_ip == "73.12.44.10"
    assert field_origins(lead.provenance)["phone"]["source"] == "test-mls"
    assert 0 < lead.quality_score <= 100
    assert 0 <= lead.fraud_score < 0.5


async def test_running_the_same_input_again_creates_nothing(runtime: Runtime) -> None:
    batch = [
        seller("L1"),
        seller(
            "L2",
            first_name="Ana",
            last_name="Lopez",
            phone="702-555-0188",
            email="ana@yahoo.com",
            street="12 Oak St",
            unit=None,
        ),
    ]
    await run_source(runtime, MLS, trigger="test", records=batch)
    again = await run_source(runtime, MLS, trigger="test", records=batch)
    assert again.counts["unchanged"] == 2
    assert again.counts["accepted"] == 0
    assert len(await leads(runtime)) == 2
    assert len(await records(runtime)) == 2


async def test_bad_records_are_quarantined_with_reasons_and_payload(runtime: Runtime) -> None:
    bad = seller("BAD", phone="12", email="not-an-email", street=None)
    weird = seller("WEIRD", beds={"nested": "object"})
    run = await run_source(runtime, MLS, trigger="test", records=[bad, weird, seller("OK")])
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["quarantined"] == 1
    assert run.counts["failed"] == 1
    assert run.counts["accepted"] == 1
    assert run.quarantined_by_reason["missing_contact"] == 1
    assert run.quarantined_by_reason["invalid_field"] == 1
    by_key = {r.source_key: r for r in await records(runtime)}
    assert by_key["BAD"].outcome is Outcome.QUARANTINED
    assert by_key["BAD"].lead_id is None
    assert by_key["BAD"].payload["phone"] == "12"
    codes = {p["code"] for p in by_key["BAD"].problems}
    assert {"phone_invalid", "email_invalid", "missing_contact", "missing_address"} <= codes
    assert by_key["WEIRD"].outcome is Outcome.FAILED


async def test_duplicates_across_sources_merge_into_one_golden_record(runtime: Runtime) -> None:
    variant = seller(
        "M1",
        first_name="Bob",
        phone="702.555.0143",
        email=None,
        street="4500 West Sahara Avenue",
        unit="#210",
        beds="3",
        year_built="1998",
    )
    # The MLS record arrives first: the form's is fresher, yet trust decides.
    await run_source(runtime, MLS, trigger="test", records=[variant])
    run = await run_source(runtime, FORM, trigger="test", records=[seller("F1", beds="4")])
    assert run.counts["merged"] == 1
    [lead] = await leads(runtime)
    assert lead.source_count == 2
    assert lead.beds == 3  # the MLS is trusted more than the form
    assert field_origins(lead.provenance)["beds"]["source"] == "test-mls"
    assert lead.email == "robert.johnson@gmail.com"  # only the form had it
    assert field_origins(lead.provenance)["email"]["source"] == "test-form"
    assert lead.year_built == 1998


async def test_a_new_version_of_a_record_updates_its_lead(runtime: Runtime) -> None:
    await run_source(runtime, MLS, trigger="test", records=[seller("L1")])
    run = await run_source(
        runtime, MLS, trigger="test", records=[seller("L1", list_price="$399,000")]
    )
    assert run.counts["updated"] == 1
    [lead] = await leads(runtime)
    assert lead.list_price_cents == 39_900_000
    rows = await records(runtime)
    assert sorted(r.current for r in rows) == [False, True]


async def test_a_lead_whose_only_record_is_no_longer_a_lead_comes_off_sale(
    runtime: Runtime, clock: FrozenClock
) -> None:
    """A listing's next version can be no lead at all (RESO: sold; or now unusable): the
    lead it fed must not stay on sale with the old version's facts, nor be gone for good."""
    await run_source(runtime, MLS, trigger="test", records=[seller("L1"), seller("L2")])
    clock.advance(timedelta(hours=1))
    unusable = seller("L1", phone="12", email="not-an-email")
    broken = seller("L2", beds={"nested": "object"})
    run = await run_source(runtime, MLS, trigger="test", records=[unusable, broken])
    assert (run.counts["quarantined"], run.counts["failed"]) == (1, 1)
    assert {lead.status for lead in await leads(runtime)} == {LeadStatus.EXPIRED}
    assert {lead.status_changed_at for lead in await leads(runtime)} == {clock.now()}
    current = [r for r in await records(runtime) if r.current]
    assert sorted(r.outcome for r in current) == sorted([Outcome.QUARANTINED, Outcome.FAILED])

    # Off sale, not gone: the next good version (a relisting, a mended typo) brings it back,
    # on sale from now (saved searches announce it).
    clock.advance(timedelta(days=3))
    again = await run_source(runtime, MLS, trigger="test", records=[seller("L1", beds="4")])
    assert again.counts["merged"] == 1
    [lead] = await leads(runtime)  # L1 and L2 were one person's records all along
    assert (lead.status, lead.beds, lead.source_count) == (LeadStatus.AVAILABLE, 4, 1)
    assert lead.status_changed_at == clock.now()


async def test_a_lead_that_loses_one_of_two_sources_keeps_the_others_facts(
    runtime: Runtime,
) -> None:
    await run_source(runtime, MLS, trigger="test", records=[seller("M1", parcel_number="APN-1")])
    await run_source(runtime, FORM, trigger="test", records=[seller("F1")])
    [lead] = await leads(runtime)
    assert (lead.source_count, lead.parcel_number) == (2, "APN-1")
    await run_source(runtime, MLS, trigger="test", records=[seller("M1", phone="12", email="nope")])
    [lead] = await leads(runtime)
    assert lead.status is LeadStatus.AVAILABLE
    assert lead.source_count == 1
    assert lead.parcel_number is None  # only the MLS record had it


async def test_a_record_sent_twice_in_one_batch_is_stored_once_as_its_last_version(
    runtime: Runtime,
) -> None:
    first = seller("L1", list_price="$400K")
    second = seller("L1", list_price="$410K")
    run = await run_source(runtime, MLS, trigger="test", records=[first, second, first])
    assert run.status is RunStatus.SUCCEEDED
    assert (run.counts["accepted"], run.counts["unchanged"]) == (1, 2)
    [lead] = await leads(runtime)
    assert (lead.source_count, lead.list_price_cents) == (1, 40_000_000)
    assert [r.current for r in await records(runtime)] == [True]
    later = await run_source(runtime, MLS, trigger="test", records=[second, first])
    assert later.counts["unchanged"] == 2  # the last, `first`, is what we hold


async def test_a_record_that_goes_back_to_an_earlier_version_is_current_again(
    runtime: Runtime,
) -> None:
    """A price changed and changed back: the third run brings back a version stored before
    (the unique source/key/hash index once crashed the run on it)."""
    first, second = seller("L1", list_price="$400K"), seller("L1", list_price="$410K")
    for record in (first, second, first):
        run = await run_source(runtime, MLS, trigger="test", records=[record])
        assert run.status is RunStatus.SUCCEEDED
    assert run.counts["updated"] == 1
    [came_back] = [r for r in await records(runtime) if r.current]
    assert came_back.run_id == run.id  # listed under the run it came back in
    [lead] = await leads(runtime)
    assert lead.list_price_cents == 40_000_000
    rows = await records(runtime)
    assert len(rows) == 2
    assert [r.payload["list_price"] for r in rows if r.current] == ["$400K"]


async def test_a_value_the_field_cannot_hold_quarantines_only_its_record(
    runtime: Runtime,
) -> None:
    # PostgreSQL refuses a varchar overflow at INSERT; the batch must not pay for one record.
    long_name = seller("LONG", parcel_number="APN-" + "9" * 60)
    long_key = seller("K" * 400, first_name="Ana", phone="702-555-0188", email="ana@yahoo.com")
    run = await run_source(runtime, MLS, trigger="test", records=[long_name, long_key])
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["quarantined"] == 1
    assert run.counts["accepted"] == 1
    assert run.quarantined_by_reason["value_too_long"] == 1
    by_outcome = {r.outcome: r for r in await records(runtime)}
    quarantined = by_outcome[Outcome.QUARANTINED]
    assert quarantined.payload["parcel_number"] == "APN-" + "9" * 60
    assert ("value_too_long", "parcel_number") in {
        (p["code"], p["field"]) for p in quarantined.problems
    }
    long_first_name = await run_source(
        runtime, MLS, trigger="test", records=[seller("NAME", first_name="Robert" * 20)]
    )
    assert long_first_name.quarantined_by_reason["value_too_long"] == 1
    accepted = by_outcome[Outcome.ACCEPTED]
    assert len(accepted.source_key) == 300
    assert accepted.source_key.startswith("K" * 200)
    again = await run_source(runtime, MLS, trigger="test", records=[long_key])
    assert again.counts["unchanged"] == 1


async def test_absurd_values_cost_only_their_own_field_or_record(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values no form means (a NaN price, digits by the hundred, a date beyond the calendar in
    UTC, a price beyond 64-bit cents) are problems of their field; a value no stage foresaw
    fails its one record, with the reason; the other records of the run are stored."""
    consent = {"captured_at": "9999-12-31T23:00:00-05:00", "text": "Call me about my home"}
    absurd = [
        seller("NAN", list_price=float("nan")),
        seller("DIGITS", beds=10**400, year_built="9" * 500),
        seller("HUGE", list_price="$99,999,999,999,999,999,999"),
        seller("EDGE", consent=consent),
    ]
    run = await run_source(runtime, MLS, trigger="test", records=[*absurd, seller("OK")])
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["failed"] == 0
    by_key = {r.source_key: r for r in await records(runtime)}
    assert set(by_key) == {"NAN", "DIGITS", "HUGE", "EDGE", "OK"}
    codes = {key: {p["code"] for p in r.problems} for key, r in by_key.items()}
    assert "price_invalid" in codes["NAN"]
    assert "price_invalid" in codes["HUGE"]
    assert "value_out_of_range" in codes["DIGITS"]
    assert "date_invalid" in codes["EDGE"]

    def crash(*_: object) -> None:
        raise ArithmeticError("a stage's bug")

    monkeypatch.setattr("aiqleads.quality.normalise.normalise_email", crash)
    crashed = await run_source(runtime, MLS, trigger="test", records=[seller("BUG")])
    assert crashed.status is RunStatus.SUCCEEDED
    assert crashed.counts["failed"] == 1
    bug = {r.source_key: r for r in await records(runtime)}["BUG"]
    assert bug.outcome is Outcome.FAILED
    assert [(p["code"], p["message"]) for p in bug.problems] == [
        ("clean_crashed", "ArithmeticError: a stage's bug")
    ]
    assert bug.payload == seller("BUG").payload


async def test_a_field_no_record_carries_any_more_is_cleared(runtime: Runtime) -> None:
    await run_source(runtime, MLS, trigger="test", records=[seller("L1", beds="4")])
    await run_source(runtime, MLS, trigger="test", records=[seller("L1", beds=None)])
    [lead] = await leads(runtime)
    assert lead.beds is None
    assert "beds" not in field_origins(lead.provenance)


async def test_same_household_different_person_stays_two_leads(runtime: Runtime) -> None:
    spouse = seller("L2", first_name="Maria", phone="702-555-0177", email="maria@yahoo.com")
    await run_source(runtime, MLS, trigger="test", records=[seller("L1"), spouse])
    assert len(await leads(runtime)) == 2


async def test_doubtful_matches_are_left_for_review(runtime: Runtime) -> None:
    other = lookalike()
    await run_source(runtime, MLS, trigger="test", records=[seller("L1"), other])
    assert len(await leads(runtime)) == 2
    async with runtime.transaction(write=False) as session:
        [possible] = list(await session.scalars(sa.select(PossibleDuplicate)))
    assert "same_phone" in possible.reasons


async def test_suspicious_leads_wait_in_quarantine(runtime: Runtime) -> None:
    fake = fake_lead()
    run = await run_source(runtime, FORM, trigger="test", records=[fake])
    [lead] = await leads(runtime)
    assert lead.status is LeadStatus.QUARANTINED
    assert lead.fraud_score > 0.7
    codes = {r["code"] for r in lead.fraud_reasons}
    assert codes & {
        "name_gibberish",
        "email_disposable",
        "phone_toll_free",
        "price_absurd",
        "consent_missing",
    }
    assert run.counts["quarantined"] == 1
    assert run.quarantined_by_reason == {"fraud_suspected": 1}


async def test_a_replayed_suspicious_record_is_judged_again_not_merged_into_itself(
    runtime: Runtime,
) -> None:
    run = await run_source(runtime, FORM, trigger="test", records=[fake_lead()])
    replay = await run_source(
        runtime, FORM, trigger="replay", records=[fake_lead()], replay_of=run.id
    )
    assert replay.counts["merged"] == 0
    [lead] = await leads(runtime)
    assert lead.status is LeadStatus.QUARANTINED
    assert lead.source_count == 1
    assert [r.current for r in await records(runtime)] == [True]


async def test_blocking_keys_are_stored_for_incremental_matching(runtime: Runtime) -> None:
    await run_source(runtime, MLS, trigger="test", records=[seller("L1")])
    async with runtime.transaction(write=False) as session:
        keys = set(await session.scalars(sa.select(LeadMatchKey.key)))
    assert "p:+17025550143" in keys
    assert "e:robert.johnson@gmail.com" in keys
    assert "a:89102|4500|SAHARA" in keys
    assert any(k.startswith("n:") and k.endswith("|89102") for k in keys)


async def test_the_public_point_is_the_location_rounded_to_about_a_kilometre(
    runtime: Runtime,
) -> None:
    await run_source(runtime, MLS, trigger="test", records=[seller("L1")])
    lead = (await leads(runtime))[0]
    assert lead.latitude is not None
    assert lead.longitude is not None
    assert (lead.public_latitude, lead.public_longitude) == (
        round(lead.latitude, 2),
        round(lead.longitude, 2),
    )
    async with runtime.transaction(write=False) as session:
        if session.get_bind().dialect.name != "postgresql":
            return
        # PostGIS's point, which search uses, follows the public point.
        distance = await session.scalar(
            sa.text(
                "SELECT ST_Distance(geog, ST_MakePoint(public_longitude, public_latitude)"
                "::geography) FROM leads"
            )
        )
    assert distance == 0
