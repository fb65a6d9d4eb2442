"""Redaction of a description before purchase: the lead's own values, in context."""

from __future__ import annotations

import pytest

from aiqleads.quality.masking import redact

LEAD = {
    "first_name": "Maria",
    "last_name": "Strauß",
    "street_number": "4512A",
    "street_name": "W Sahara Ave",
    "unit_number": "12B",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Names as names: capitalised or in capitals, whole words only.
        ("Ask Maria or MARIA", "Ask [hidden] or [hidden]"),
        ("maria and Marias stay", "maria and Marias stay"),
        ("STRAUSS and Strauß", "[hidden] and [hidden]"),
        # The house number before its street, in any case, across a direction.
        ("at 4512a W. Sahara", "at [hidden] W. Sahara"),
        ("at 4512A  sahara", "at [hidden]  sahara"),
        # ... and alone anywhere, but not inside amounts, decimals or words.
        ("number 4512A, the corner", "number [hidden], the corner"),
        ("$4512A or 4512A.5 or X4512A", "$4512A or 4512A.5 or X4512A"),
        # The unit after its designator, designator and all.
        ("Unit #12B faces east; apt. 12b too", "[hidden] faces east; [hidden] too"),
        ("12B beds? no: suite 12BC", "12B beds? no: suite 12BC"),
        # Contact details whatever the lead says.
        ("mail m.s@example.com or 702.555.0143", "mail [hidden] or [hidden]"),
    ],
)
def test_redact_blanks_the_leads_own_values_in_context(text: str, expected: str) -> None:
    assert redact(text, **LEAD) == expected


@pytest.mark.parametrize(
    ("first", "last", "text", "expected"),
    [
        # A name with an inner capital as stored, and in any case: no word is spelt so.
        ("Sean", "McDonald", "Owner Sean McDonald; mcdonald", "Owner [hidden] [hidden]; [hidden]"),
        ("Ana", "DeLuca", "DELUCA or Deluca", "[hidden] or [hidden]"),
        # As written, with its lower-case particle.
        ("Piet", "van der Berg", "ask Piet van der Berg", "ask [hidden] [hidden]"),
        # A plain name stays a word in lower case ("rose garden").
        ("Rose", "Hill", "Rose's rose garden on the hill", "[hidden]'s rose garden on the hill"),
    ],
)
def test_names_are_blanked_as_written_and_as_names(
    first: str, last: str, text: str, expected: str
) -> None:
    values = {**LEAD, "first_name": first, "last_name": last}
    assert redact(text, **values) == expected


def test_a_house_number_the_card_shows_anyway_stays_where_it_stands_alone() -> None:
    text = "Built 1998 at 1998 Sahara"
    fields = {**LEAD, "street_number": "1998", "street_name": "Sahara Ave"}

    assert redact(text, **fields, shown=[3, 1998]) == "Built 1998 at [hidden] Sahara"
    assert redact(text, **fields) == "Built [hidden] at [hidden] Sahara"


def test_short_or_missing_values_blank_nothing() -> None:
    text = "A quiet street, Sahara 2"
    values = {"first_name": "A", "last_name": None, "street_number": None}

    assert redact(text, **values, street_name="Sahara", unit_number=None) == text
    assert redact(None, **values, street_name=None, unit_number="2") is None
