"""Normalisation: names, phones (E.164), e-mails, US addresses (USPS Pub. 28), prices, numbers
and dates, each a small pure function that returns a clean value and any problems it found.

A value that cannot be repaired becomes None with a coded problem, so nothing is silently
dropped: the raw payload stays with the record and the problem says what happened to it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
import usaddress
from disposable_email_domains import blocklist as _disposable_domains
from email_validator import EmailNotValidError, validate_email
from scourgify.cleaning import pre_clean_addr_str
from scourgify.exceptions import AddressNormalizationError
from scourgify.normalize import (
    LINE1_USADDRESS_LABELS,
    LINE2_USADDRESS_LABELS,
    normalize_address_components,
    normalize_state,
    parse_address_string,
)

from aiqleads.ingest.connectors.base import RawValue
from aiqleads.quality.problems import Problem, error, warning

_SPACES = re.compile(r"\s+")
# Control and format characters (C0, C1, zero-width and bidi marks) never belong in a value,
# nor does U+FFFD, what an undecodable byte or a NUL (`ingest.connectors.base.storable`)
# became; tabs and newlines are whitespace and collapse to one space instead.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ufffd]"
)
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "dr", "mx"})
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_NAME_OK = re.compile(r"^[^\W\d_]+(?:['’.\- ][^\W\d_]+)*\.?$")


def clean_text(value: RawValue) -> str | None:
    """Trimmed text with runs of whitespace collapsed and control characters removed."""
    if value is None:
        return None
    text = str(value)
    # Printable text has no control, format or separator characters but the plain space
    # (str.isprintable), so only runs of spaces can need work: the common case, made cheap.
    if not text.isprintable() or "\ufffd" in text:
        text = _SPACES.sub(" ", _CONTROL.sub("", text))
    elif "  " in text:
        text = _SPACES.sub(" ", text)
    return text.strip() or None


def _case_name(part: str) -> str:
    # Keep deliberate mixed case ("McDonald", "DeShawn"); fix ALL CAPS and all lower.
    if part.isupper() or part.islower():
        return "-".join(
            "'".join(s[:1].upper() + s[1:].lower() for s in piece.split("'"))
            for piece in part.split("-")
        )
    return part


@dataclass(frozen=True, slots=True)
class PersonName:
    first: str | None
    last: str | None


def normalise_name(
    first: RawValue, last: RawValue, full: RawValue
) -> tuple[PersonName, list[Problem]]:
    """First and last name from separate fields or a full name ("Last, First" or "First Last")."""
    problems: list[Problem] = []
    first_s, last_s = clean_text(first), clean_text(last)
    if first_s is None and last_s is None and (full_s := clean_text(full)):
        if "," in full_s:
            last_s, _, first_s = (p.strip() for p in full_s.partition(","))
        else:
            words = [w for w in full_s.split(" ") if w.lower().strip(".") not in _HONORIFICS]
            words = [w for w in words if w.lower().strip(".") not in _SUFFIXES] or words
            if len(words) == 1:
                first_s, last_s = words[0], None
            elif words:
                first_s, last_s = words[0], words[-1]
    result: list[str | None] = []
    for label, part in (("first_name", first_s), ("last_name", last_s)):
        if part is None or part == "":
            result.append(None)
            continue
        if not _NAME_OK.match(part):
            problems.append(warning("name_unusual", f"{label} {part!r} is not a plausible name"))
        result.append(_case_name(part))  # too long for its column: validate() quarantines it
    return PersonName(result[0], result[1]), problems


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    line_type: str  # mobile, fixed_line, fixed_line_or_mobile, voip, toll_free, premium, ...


_LINE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed_line",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    phonenumbers.PhoneNumberType.VOIP: "voip",
    phonenumbers.PhoneNumberType.TOLL_FREE: "toll_free",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium_rate",
    phonenumbers.PhoneNumberType.SHARED_COST: "shared_cost",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "personal",
    phonenumbers.PhoneNumberType.PAGER: "pager",
    phonenumbers.PhoneNumberType.UAN: "uan",
    phonenumbers.PhoneNumberType.VOICEMAIL: "voicemail",
}


def normalise_phone(value: RawValue, region: str = "US") -> tuple[Phone | None, list[Problem]]:
    """E.164 with its line type; an invalid number is rejected with `phone_invalid`."""
    text = clean_text(value)
    if text is None:
        return None, []
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None, [warning("phone_invalid", f"{text!r} is not a phone number", "phone")]
    # A number is valid exactly when it has a type (`is_valid_number` is `number_type` run a
    # second time, and each runs the region's patterns: half of this function's time).
    number_type = phonenumbers.number_type(number)
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return None, [warning("phone_invalid", f"{text!r} is not a valid number", "phone")]
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164, _LINE_TYPES.get(number_type, "unknown")), []


@dataclass(frozen=True, slots=True)
class Email:
    address: str
    disposable: bool


def normalise_email(value: RawValue) -> tuple[Email | None, list[Problem]]:
    """Syntax-checked, lower-cased e-mail; disposable domains flagged (a fraud signal)."""
    text = clean_text(value)
    if text is None:
        return None, []
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, [warning("email_invalid", f"{text!r}: {exc}", "email")]
    address = result.normalized.lower()
    domain = result.ascii_domain.lower()
    disposable = domain in _disposable_domains
    problems = []
    if disposable:
        problems.append(warning("email_disposable", f"{domain} is disposable", "email"))
    return Email(address, disposable), problems


@dataclass(frozen=True, slots=True)
class Address:
    """A US street address in USPS Publication 28 form, parts and lines."""

    street_number: str | None
    street_pre_direction: str | None
    street_name: str | None
    street_suffix: str | None
    street_post_direction: str | None
    unit_type: str | None
    unit_number: str | None
    line1: str
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    zip4: str | None

    @property
    def one_line(self) -> str:
        street = f"{self.line1} {self.line2}" if self.line2 else self.line1
        place = " ".join(p for p in (self.state, self.postal_code) if p)
        return ", ".join(p for p in (street, self.city, place) if p)


_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")


def normalise_postal_code(value: RawValue) -> tuple[str | None, str | None, list[Problem]]:
    text = clean_text(value)
    if text is None:
        return None, None, []
    if isinstance(value, int):
        text = f"{value:05d}"
    match = _ZIP.match(text.replace(" ", ""))
    if match is None:
        return None, None, [warning("postal_code_invalid", f"{text!r} is not a ZIP code")]
    return match.group(1), match.group(2), []


def _unit_type(raw: str | None) -> str | None:
    if raw is None:
        return None
    return "#" if raw.strip() in {"#", "# "} else raw.strip().upper()


def normalise_address(
    street: RawValue, unit: RawValue, city: RawValue, state: RawValue, postal_code: RawValue
) -> tuple[Address | None, list[Problem]]:
    """Parse and standardise a street address (Pub. 28 abbreviations, units kept)."""
    problems: list[Problem] = []
    zip5, zip4, zip_problems = normalise_postal_code(postal_code)
    problems += zip_problems
    state_s = clean_text(state)
    try:
        state_n = normalize_state(state_s) if state_s else None
    except AddressNormalizationError:
        state_n = None
    if state_s and (state_n is None or len(state_n) != 2):
        problems.append(warning("state_invalid", f"{state_s!r} is not a US state", "state"))
        state_n = None
    city_s = clean_text(city)
    city_n = city_s.upper() if city_s else None
    street_s = clean_text(street)
    if street_s is None:
        return None, problems
    unit_s = clean_text(unit)
    if unit_s and not re.match(r"^(#|apt|unit|ste|suite|lot|bldg|fl)\b", unit_s, re.I):
        unit_s = f"# {unit_s}"
    text = f"{street_s} {unit_s}" if unit_s else street_s
    try:
        cleaned = pre_clean_addr_str(text, state_n)
        parts = normalize_address_components(parse_address_string(cleaned))
    except (AddressNormalizationError, usaddress.RepeatedLabelError) as exc:
        problems.append(error("address_unparseable", f"{street_s!r}: {type(exc).__name__}"))
        return None, problems
    if not parts.get("StreetName") or not parts.get("AddressNumber"):
        problems.append(error("address_incomplete", f"{street_s!r} has no number or street"))
        return None, problems
    # Parts keep the order they were written in, which is the order USPS prints them.
    line1 = " ".join(str(v) for k, v in parts.items() if k in LINE1_USADDRESS_LABELS and v)
    unit_type = _unit_type(parts.get("OccupancyType") or parts.get("SubaddressType"))
    unit_number = parts.get("OccupancyIdentifier") or parts.get("SubaddressIdentifier")
    if unit_number:
        unit_number = str(unit_number).lstrip("#").strip().upper()
        unit_type = unit_type or "#"
    line2 = " ".join(str(v) for k, v in parts.items() if k in LINE2_USADDRESS_LABELS and v) or None
    if unit_number:
        line2 = f"{unit_type} {unit_number}" if unit_type != "#" else f"# {unit_number}"
    address = Address(
        street_number=str(parts.get("AddressNumber")).upper(),
        street_pre_direction=parts.get("StreetNamePreDirectional"),
        street_name=str(parts.get("StreetName")).upper(),
        street_suffix=parts.get("StreetNamePostType"),
        street_post_direction=parts.get("StreetNamePostDirectional"),
        unit_type=unit_type,
        unit_number=unit_number,
        line1=line1.upper(),
        line2=line2.upper() if line2 else None,
        city=(parts.get("PlaceName") or city_n or None),
        state=state_n,
        postal_code=zip5,
        zip4=zip4,
    )
    return address, problems


# "$450K", "450,000", "$1.2M", "$240K obo", "Price: $450,000 (reduced)": a label at most, a
# number, a multiplier, then words or a remark in brackets at most.
_MONEY = re.compile(
    r"^(?:[a-z][a-z ]*:\s*)?\$?\s*(\d[\d,.]*|\.\d+)\s*(k|m|mil|million|thousand)?\b"
    r"(?:\s*[a-z][a-z .]*)?(?:\s*\([^()]*\))?$",
    re.I,
)
# Dots as thousands separators ("450.000", "1.250.000"): no home's price has three decimals.
_DOTTED_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+")
_MULTIPLIERS = {
    "k": 1_000,
    "thousand": 1_000,
    "m": 1_000_000,
    "mil": 1_000_000,
    "million": 1_000_000,
}
# Beyond this a "price" is a typo or an attack; the column holds cents in 64 bits.
MAX_PRICE_DOLLARS = 10_000_000_000


def parse_price_cents(
    value: RawValue, field: str = "list_price"
) -> tuple[int | None, list[Problem]]:
    """Dollars as a source writes them ("$450K", "450,000", 450000, "$1.2M") to integer cents."""
    if value is None or value == "":
        return None, []
    if isinstance(value, bool):
        return None, [warning("price_invalid", f"{value!r} is not a price", field)]
    if isinstance(value, int | float):
        amount = Decimal(str(value))
    else:
        text = clean_text(value) or ""
        text = text.replace("USD", "").strip()
        match = _MONEY.match(text)
        if match is None:
            return None, [warning("price_invalid", f"{value!r} is not a price", field)]
        number = match.group(1)
        if _DOTTED_THOUSANDS.fullmatch(number) and not match.group(2):  # "$1.125M" is decimal
            number = number.replace(".", "")
        try:
            amount = Decimal(number.replace(",", ""))
        except InvalidOperation:  # "1.2.3"
            return None, [warning("price_invalid", f"{value!r} is not a price", field)]
        if suffix := match.group(2):
            amount *= _MULTIPLIERS[suffix.lower()]
    # Finite first: comparing a NaN Decimal (JSON allows NaN in Python's parser) raises.
    if not amount.is_finite() or amount <= 0:
        return None, [warning("price_invalid", f"{value!r} is not a positive price", field)]
    if amount > MAX_PRICE_DOLLARS:
        return None, [warning("price_invalid", f"{value!r} is beyond any home's price", field)]
    return int((amount * 100).to_integral_value()), []


def parse_number(
    value: RawValue, field: str, low: float, high: float, *, integer: bool = False
) -> tuple[float | int | None, list[Problem]]:
    """A number within [low, high] ("3", "3.5", 3, "1,850 sq ft"); else None and a problem."""
    if value is None or value == "":
        return None, []
    if isinstance(value, bool):
        return None, [warning("value_invalid", f"{field}: {value!r} is not a number", field)]
    try:
        if isinstance(value, int | float):
            number = float(value)
        else:
            match = re.search(r"-?\d[\d,]*(?:\.\d+)?", str(value))
            if match is None:
                return None, [
                    warning("value_invalid", f"{field}: {value!r} is not a number", field)
                ]
            number = float(match.group(0).replace(",", ""))
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not low <= number <= high:  # NaN is in no range
        return None, [
            warning("value_out_of_range", f"{field}: {value!r} is outside {low}..{high}", field)
        ]
    if integer:
        return round(number), []
    return number, []


_ACRE_SQFT = 43_560
_FRACTION = re.compile(r"(?:(\d+)\s+)?(\d+)\s*/\s*(\d+)")


def parse_area_sqft(
    value: RawValue, field: str, low: float, high: float
) -> tuple[int | None, list[Problem]]:
    """An area in square feet; "0.21 acres" / "0.21 ac" are converted."""
    if isinstance(value, str) and re.search(r"\bac(re)?s?\b", value, re.I):
        if fraction := _FRACTION.search(value):  # "1/2 acre", "1 1/4 acres"
            whole, top, bottom = fraction.groups()
            if int(bottom):
                value = f"{int(whole or 0) + int(top) / int(bottom)} acres"
        acres, problems = parse_number(value, field, 0.0001, high / _ACRE_SQFT)
        if acres is None:
            return None, problems
        value = float(acres) * _ACRE_SQFT
    number, problems = parse_number(value, field, low, high, integer=True)
    return (int(number) if number is not None else None), problems


def parse_datetime(value: RawValue, field: str) -> tuple[datetime | None, list[Problem]]:
    """ISO 8601 text or a Unix timestamp to an aware UTC datetime (naive input is taken as UTC)."""
    if value is None or value == "":
        return None, []
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(float(value), UTC)
        else:
            text = str(value).strip()
            if text.isdigit():
                parsed = datetime.fromtimestamp(int(text), UTC)
            else:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Inside the try: "9999-12-31T23:00-05:00" is a date, but not one in UTC.
        return parsed.astimezone(UTC), []
    except (ValueError, OverflowError, OSError):
        return None, [warning("date_invalid", f"{field}: {value!r} is not a date", field)]


PROPERTY_TYPES = frozenset(
    {"single_family", "condo", "townhouse", "multi_family", "manufactured", "land", "commercial"}
)
_PROPERTY_ALIASES = {
    "single family": "single_family",
    "single family residence": "single_family",
    "single-family": "single_family",
    "sfr": "single_family",
    "house": "single_family",
    "residential": "single_family",
    "condominium": "condo",
    "apartment": "condo",
    "townhome": "townhouse",
    "town house": "townhouse",
    "duplex": "multi_family",
    "triplex": "multi_family",
    "fourplex": "multi_family",
    "multi family": "multi_family",
    "multi-family": "multi_family",
    "residential income": "multi_family",
    "mobile home": "manufactured",
    "manufactured home": "manufactured",
    "lot": "land",
    "lots and land": "land",
    "vacant land": "land",
    "commercial sale": "commercial",
}


def normalise_property_type(value: RawValue) -> tuple[str | None, list[Problem]]:
    text = clean_text(value)
    if text is None:
        return None, []
    key = text.lower().replace("_", " ")
    canonical = key.replace(" ", "_")
    if canonical in PROPERTY_TYPES:
        return canonical, []
    if key in _PROPERTY_ALIASES:
        return _PROPERTY_ALIASES[key], []
    return "other", [warning("property_type_unknown", f"{text!r} mapped to other", "property_type")]


def as_json_safe(value: Any) -> Any:
    """Payloads are stored as JSON: make sure nothing unserialisable slips through."""
    if isinstance(value, dict):
        return {str(k): as_json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
