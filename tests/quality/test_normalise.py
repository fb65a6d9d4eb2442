"""Normalisation: each messy value a source sends comes out canonical, or None with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiqleads.ingest.connectors.base import Candidate
from aiqleads.markets.catalog import load_markets
from aiqleads.quality import normalise as n
from aiqleads.quality.clean import clean


@pytest.mark.parametrize(
    "raw", ["(702) 555-0143", "702.555.0143", "+1 702 555 0143", "7025550143", "1-702-555-0143"]
)
def test_phone_formats_become_one_e164(raw: str) -> None:
    phone, problems = n.normalise_phone(raw)
    assert phone is not None
    assert phone.e164 == "+17025550143"
    assert problems == []


@pytest.mark.parametrize("raw", ["123", "555-1234-99999", "not a phone", "(000) 000-0000"])
def test_invalid_phones_are_rejected_with_a_reason(raw: str) -> None:
    phone, problems = n.normalise_phone(raw)
    assert phone is None
    assert [p.code for p in problems] == ["phone_invalid"]


def test_toll_free_numbers_are_recognised() -> None:
    phone, _ = n.normalise_phone("1-800-555-0199")
    assert phone is not None
    assert phone.line_type == "toll_free"


def test_email_is_lower_cased_and_disposable_domains_flagged() -> None:
    email, problems = n.normalise_email("  John.Smith@GMAIL.com ")
    assert email is not None
    assert email.address == "john.smith@gmail.com"
    assert not email.disposable
    assert problems == []
    email, problems = n.normalise_email("x@mailinator.com")
    assert email is not None
    assert email.disposable
    assert [p.code for p in problems] == ["email_disposable"]
    email, problems = n.normalise_email("john@@example")
    assert email is None
    assert [p.code for p in problems] == ["email_invalid"]


@pytest.mark.parametrize(
    ("street", "unit", "line1", "line2", "unit_number"),
    [
        ("4500 West Sahara Avenue Unit 210", None, "4500 W SAHARA AVE", "UNIT 210", "210"),
        ("4500 W Sahara Ave #210", None, "4500 W SAHARA AVE", "# 210", "210"),
        ("4500 w. sahara ave", "Apt 210", "4500 W SAHARA AVE", "APT 210", "210"),
        ("4500 W Sahara Ave", "210", "4500 W SAHARA AVE", "# 210", "210"),
        ("123 north Main street", None, "123 N MAIN ST", None, None),
    ],
)
def test_addresses_follow_pub_28_and_keep_units(
    street: str, unit: str | None, line1: str, line2: str | None, unit_number: str | None
) -> None:
    address, problems = n.normalise_address(street, unit, "las vegas", "Nevada", "89102-1234")
    assert address is not None, problems
    assert (address.line1, address.line2, address.unit_number) == (line1, line2, unit_number)
    assert (address.state, address.postal_code, address.zip4) == ("NV", "89102", "1234")
    assert address.one_line.startswith(line1)


def test_an_address_without_a_house_number_is_an_error() -> None:
    address, problems = n.normalise_address("Main Street", None, "Austin", "TX", "78701")
    assert address is None
    assert [p.code for p in problems if p.severity == "error"] in (
        ["address_incomplete"],
        ["address_unparseable"],
    )


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("$450K", 45_000_000),
        ("450,000", 45_000_000),
        (450000, 45_000_000),
        ("$1.2M", 120_000_000),
        ("$240K obo", 24_000_000),
        ("$450,000.50", 45_000_050),
        ("1.5 million", 150_000_000),
        ("$450 thousand", 45_000_000),
        ("450.000", 45_000_000),
        ("1.250.000", 125_000_000),
        ("Price: $450,000", 45_000_000),
        ("$450,000 (reduced)", 45_000_000),
        ("1.2.3", None),
        ("$1.125 million", 112_500_000),  # a multiplier's decimals stay decimals
        ("$2.500M", 250_000_000),
        (None, None),
        ("call for price", None),
        ("-5", None),
    ],
)
def test_prices_become_integer_cents(raw: str | int | None, cents: int | None) -> None:
    value, _ = n.parse_price_cents(raw)
    assert value == cents
    assert value is None or isinstance(value, int)


def test_areas_in_acres_become_square_feet() -> None:
    assert n.parse_area_sqft("0.25 acres", "lot", 100, 5e7)[0] == 10_890
    assert n.parse_area_sqft("1/2 acre", "lot", 100, 5e7)[0] == 21_780
    assert n.parse_area_sqft("1 1/4 acres", "lot", 100, 5e7)[0] == 54_450
    assert n.parse_area_sqft("1/0 acre", "lot", 100, 5e7)[0] == 43_560  # as written: 1
    assert n.parse_area_sqft("2,140 sq ft", "area", 100, 1e5)[0] == 2_140
    value, problems = n.parse_area_sqft("12", "area", 100, 1e5)
    assert value is None
    assert problems[0].code == "value_out_of_range"


def test_names_from_full_names_in_either_order() -> None:
    name, _ = n.normalise_name(None, None, "SMITH, JOHN")
    assert (name.first, name.last) == ("John", "Smith")
    name, _ = n.normalise_name(None, None, "Dr. Mary-Ann O'CONNOR Jr.")
    assert (name.first, name.last) == ("Mary-Ann", "O'Connor")
    name, _ = n.normalise_name("  deShawn ", "McDonald", None)
    assert (name.first, name.last) == ("deShawn", "McDonald")


def test_dates_are_utc() -> None:
    value, _ = n.parse_datetime("2026-02-01T10:00:00-07:00", "d")
    assert value == datetime(2026, 2, 1, 17, 0, tzinfo=UTC)
    value, problems = n.parse_datetime("yesterday", "d")
    assert value is None
    assert problems[0].code == "date_invalid"


def test_clean_geocodes_from_zip_when_source_coordinates_are_wrong() -> None:
    markets = load_markets()
    cleaned = clean(
        Candidate(
            first_name="Ana",
            last_name="Lopez",
            phone="702-555-0143",
            street="4500 W Sahara Ave",
            city="Las Vegas",
            state="NV",
            postal_code="89102",
            latitude="0",
            longitude="0",
        ),
        "seller",
        markets,
    )
    f = cleaned.fields
    assert f["geocode_precision"] == "zip"
    assert f["market"] == "las-vegas"
    assert f["h3_r7"]
    assert f["h3_r9"]
    assert "coordinates_invalid" in {p.code for p in cleaned.problems}
    assert cleaned.errors == []


def test_clean_reports_each_gap_with_a_code() -> None:
    cleaned = clean(
        Candidate(
            full_name="Ana Lopez", phone="12", city="Austin", state="NV", postal_code="78701"
        ),
        "seller",
        load_markets(),
    )
    codes = {p.code for p in cleaned.errors}
    assert {"missing_contact", "missing_address", "zip_state_mismatch"} <= codes


def test_leads_outside_every_market_are_quarantined() -> None:
    cleaned = clean(
        Candidate(
            full_name="Ana Lopez",
            phone="212-555-0143",
            street="1 Main St",
            city="New York",
            state="NY",
            postal_code="10001",
        ),
        "seller",
        load_markets(),
    )
    assert [p.code for p in cleaned.errors] == ["outside_markets"]
