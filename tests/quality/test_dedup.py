"""Entity resolution decisions and survivorship."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiqleads.quality.dedup import (
    Contribution,
    Decision,
    compare,
    conflicting_facts,
    field_origins,
    match_keys,
    survive,
)


def person(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "seller",
        "first_name": "Robert",
        "last_name": "Johnson",
        "phone": "+17025550143",
        "email": "rjohnson@gmail.com",
        "street_number": "4500",
        "street_name": "SAHARA",
        "unit_number": None,
        "postal_code": "89102",
        "state": "NV",
        "parcel_number": None,
    }
    base.update(overrides)
    return base


def shared(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k.split(":")[0] for k in match_keys(a) & match_keys(b)}


def decide(a: dict[str, Any], b: dict[str, Any]) -> Decision:
    return compare(a, b, shared(a, b)).decision


def test_nickname_and_other_phone_format_is_the_same_person() -> None:
    assert decide(person(), person(first_name="Bob", email=None)) is Decision.MATCH


def test_swapped_first_and_last_names_match() -> None:
    assert decide(person(), person(first_name="Johnson", last_name="Robert")) is Decision.MATCH


def test_a_typo_in_the_surname_still_matches_on_phone() -> None:
    assert decide(person(), person(last_name="Jonhson", email=None)) is Decision.MATCH


def test_same_household_different_person_is_not_merged() -> None:
    spouse = person(first_name="Maria", phone="+17025550999", email="maria.j@yahoo.com")
    assert decide(person(), spouse) is Decision.NON_MATCH


def test_different_units_of_one_building_are_different_leads() -> None:
    a = person(unit_number="210", phone=None, email=None)
    b = person(unit_number="305", phone="+17025550777", email=None)
    assert decide(a, b) is not Decision.MATCH


def test_shared_phone_with_a_different_name_goes_to_review_not_merge() -> None:
    other = person(first_name="Robin", last_name="Jonas", email=None)
    assert decide(person(), other) is Decision.POSSIBLE


def test_a_buyer_and_a_seller_are_different_leads() -> None:
    assert decide(person(), person(kind="buyer")) is Decision.NON_MATCH


def test_listings_without_owner_names_match_on_parcel() -> None:
    a = person(first_name=None, last_name=None, phone=None, email=None, parcel_number="162-03")
    b = dict(a, kind="expired_listing")
    assert decide(a, b) is Decision.MATCH


def test_survivorship_prefers_trust_then_freshness_and_records_provenance() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    mls = Contribution("r1", "mls", "L1", 0.9, now - timedelta(days=10), person(beds=3))
    form = Contribution(
        "r2",
        "form",
        "F1",
        0.6,
        now,
        person(phone="+17025550999", beds=4, year_built=1999, living_area_sqft=1800),
    )
    newer_form = Contribution(
        "r3", "form", "F2", 0.6, now + timedelta(days=1), person(beds=5, living_area_sqft=1900)
    )
    golden, stored = survive([form, mls, newer_form])
    provenance = field_origins(stored)
    assert golden["phone"] == "+17025550143"  # the MLS is trusted most
    assert provenance["phone"]["source"] == "mls"
    assert golden["beds"] == 3
    assert golden["year_built"] == 1999  # only the form has it
    assert provenance["year_built"]["record_id"] == "r2"
    # Between equally trusted records the fresher one wins (the MLS has no living area).
    assert golden["living_area_sqft"] == 1900
    assert provenance["living_area_sqft"]["record_id"] == "r3"
    assert conflicting_facts([mls, form]) == ["beds"]


def test_provenance_is_stored_once_per_record_and_read_back_per_field() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    mls = Contribution("r1", "mls", "L1", 0.9, now, person(beds=3))
    form = Contribution("r2", "form", "F1", 0.6, now, person(year_built=1999))
    golden, stored = survive([form, mls])
    assert [r["record_id"] for r in stored["records"]] == ["r1", "r2"]
    by_field = field_origins(stored)
    assert by_field["beds"] == {"record_id": "r1", "source": "mls", "source_key": "L1"}
    assert by_field["year_built"] == {"record_id": "r2", "source": "form", "source_key": "F1"}
    assert all(golden[name] is not None for name in by_field)
    assert {"first_name", "phone", "beds", "year_built"} <= set(by_field)
    # A lead written before provenance was grouped by record reads as it was stored.
    old = {"beds": {"record_id": "r9", "source": "mls", "source_key": "L9"}}
    assert field_origins(old) == old
