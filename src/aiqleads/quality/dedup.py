"""Entity resolution: blocking keys, pairwise comparison and survivorship.

Blocking keys (phone, e-mail, street address, parcel number, phonetic name + ZIP) pick the few
stored leads worth comparing with a new record. Comparison weighs which keys are shared and
how alike the names are (Jaro-Winkler, nicknames, swapped first/last) into match, possible
match or non-match. A wrong merge costs more than a missed one (a buyer would be sold two
people as one), so a match needs a shared contact or address *and* a name that agrees;
a shared key with a doubtful name is only a possible match, left to an operator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import jellyfish
from nicknames import NickNamer
from rapidfuzz.distance import JaroWinkler

from aiqleads.kit.dialect import search_text
from aiqleads.quality.geocode import public_point
from aiqleads.quality.masking import redact, shown_numbers

Fields = dict[str, Any]

PHONE, EMAIL, ADDRESS, PARCEL, NAME = "p", "e", "a", "parcel", "n"
# Kinds that describe the same intent (someone selling a home) and so may merge.
_KIND_FAMILY = {
    "seller": "sell",
    "fsbo": "sell",
    "expired_listing": "sell",
    "buyer": "buy",
    "solar_homeowner": "solar",
}


class Decision(enum.StrEnum):
    MATCH = "match"
    POSSIBLE = "possible"
    NON_MATCH = "non_match"


def _phonetic(name: str | None) -> str | None:
    if not name:
        return None
    code: str = jellyfish.metaphone(name)
    return code or None


def address_key(f: Fields) -> str | None:
    """The building: ZIP, number and street name (units are compared, not blocked on)."""
    if f.get("street_number") and f.get("street_name") and f.get("postal_code"):
        return f"{f['postal_code']}|{f['street_number']}|{f['street_name']}"
    return None


def match_keys(f: Fields) -> set[str]:
    """The blocking keys of one record or lead."""
    keys: set[str] = set()
    if f.get("phone"):
        keys.add(f"{PHONE}:{f['phone']}")
    if f.get("email"):
        keys.add(f"{EMAIL}:{f['email']}")
    if building := address_key(f):
        keys.add(f"{ADDRESS}:{building}")
    if f.get("parcel_number"):
        keys.add(f"{PARCEL}:{f.get('state') or ''}|{f['parcel_number']}")
    first, last = _phonetic(f.get("first_name")), _phonetic(f.get("last_name"))
    if first and last and f.get("postal_code"):
        # Sorted so "Smith John" and "John Smith" share the key.
        pair = "|".join(sorted((first, last)))
        keys.add(f"{NAME}:{pair}|{f['postal_code']}")
    return keys


def key_kind(key: str) -> str:
    return key.split(":", 1)[0]


@cache
def _nicknamer() -> NickNamer:
    return NickNamer()


@cache
def _name_forms(first: str) -> frozenset[str]:
    """A first name with its nicknames and canonical forms (Bob <-> Robert)."""
    low = first.lower()
    nn = _nicknamer()
    return frozenset({low} | nn.nicknames_of(low) | nn.canonicals_of(low))


def _sim(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return float(JaroWinkler.similarity(a.lower(), b.lower()))


def first_name_similarity(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    if a.lower() in _name_forms(b) or b.lower() in _name_forms(a):
        return 1.0
    # A bare initial agrees with any name it starts.
    if min(len(a.rstrip(".")), len(b.rstrip("."))) == 1 and a[0].lower() == b[0].lower():
        return 0.9
    return _sim(a, b)


def name_similarity(a: Fields, b: Fields) -> float | None:
    """How alike two people's names are, 0..1, forgiving typos, nicknames and swapped order."""
    return _overall(a, b, *oriented_similarity(a, b))


def _overall(a: Fields, b: Fields, first: float | None, last: float | None) -> float | None:
    """One figure from the two halves: their mean, and one missing half counts as doubtful
    (x 0.9), not as agreement. None when either side has no name at all."""
    if not (a.get("first_name") or a.get("last_name")):
        return None
    if not (b.get("first_name") or b.get("last_name")):
        return None
    halves = [x for x in (first, last) if x is not None]
    if not halves:
        return 0.0
    return sum(halves) / len(halves) * (1.0 if len(halves) == 2 else 0.9)


@dataclass(frozen=True, slots=True)
class Comparison:
    decision: Decision
    score: float
    reasons: tuple[str, ...]


def _units_agree(a: Fields, b: Fields) -> bool:
    ua, ub = a.get("unit_number"), b.get("unit_number")
    return not ua or not ub or ua == ub


def compare(a: Fields, b: Fields, shared: Iterable[str] = ()) -> Comparison:
    """Compare a record with a lead; `shared` lists the blocking-key kinds they have in common
    (a lead keeps the keys of all its records, so it may share an old phone the golden record
    no longer shows)."""
    shared_set = set(shared)
    if _KIND_FAMILY.get(a.get("kind", ""), a.get("kind")) != _KIND_FAMILY.get(
        b.get("kind", ""), b.get("kind")
    ):
        return Comparison(Decision.NON_MATCH, 0.0, ("different_kind",))
    phone = PHONE in shared_set or (a.get("phone") and a.get("phone") == b.get("phone"))
    email = EMAIL in shared_set or (a.get("email") and a.get("email") == b.get("email"))
    building = ADDRESS in shared_set or (
        address_key(a) is not None and address_key(a) == address_key(b)
    )
    same_address = bool(building) and _units_agree(a, b)
    parcel = PARCEL in shared_set
    reasons = [
        r
        for r, hit in (
            ("same_phone", phone),
            ("same_email", email),
            ("same_address", same_address),
            ("same_parcel", parcel),
        )
        if hit
    ]
    first, last = oriented_similarity(a, b)
    names = _overall(a, b, first, last)
    contact = bool(phone or email)
    if names is None:
        # No people to compare (MLS listings without owner details): the property decides.
        if (parcel or same_address) and not (a.get("first_name") or b.get("first_name")):
            return Comparison(Decision.MATCH, 0.95, tuple(reasons))
        if contact:
            return Comparison(Decision.POSSIBLE, 0.6, tuple(reasons))
        return Comparison(Decision.NON_MATCH, 0.0, tuple(reasons))
    reasons.append(f"name_similarity={names:.2f}")
    evidence = sum((bool(phone), bool(email), same_address, parcel))
    halves = [x for x in (first, last) if x is not None]
    # Both halves must agree: a nickname or a typo is forgiven, a different surname is not.
    strong = (first is None or first >= 0.8) and (last is None or last >= 0.88)
    if strong and evidence >= (1 if len(halves) == 2 else 2):
        return Comparison(
            Decision.MATCH, min(1.0, 0.6 + 0.1 * evidence + 0.2 * names), tuple(reasons)
        )
    if contact and names >= 0.6:
        return Comparison(Decision.POSSIBLE, 0.5 + 0.3 * names, tuple(reasons))
    return Comparison(Decision.NON_MATCH, 0.3 * names, tuple(reasons))


def oriented_similarity(a: Fields, b: Fields) -> tuple[float | None, float | None]:
    """First- and last-name similarity, with the names read the way round that fits best."""
    af, al, bf, bl = (
        a.get("first_name"),
        a.get("last_name"),
        b.get("first_name"),
        b.get("last_name"),
    )
    straight = (first_name_similarity(af, bf), _sim(al, bl))
    if not (af and al and bf and bl):
        return straight
    swapped = (first_name_similarity(al, bf), _sim(af, bl))
    return max(straight, swapped, key=lambda pair: (pair[0] or 0) + (pair[1] or 0))


# Survivorship: fields that only make sense together come from the same record.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("first_name", "last_name"),
    "phone": ("phone", "phone_type"),
    "email": ("email", "email_disposable"),
    "address": (
        "street_number",
        "street_pre_direction",
        "street_name",
        "street_suffix",
        "street_post_direction",
        "unit_type",
        "unit_number",
        "address_line1",
        "address_line2",
        "city",
        "state",
        "postal_code",
        "zip4",
        "address",
    ),
    "location": ("latitude", "longitude", "geocode_precision", "h3_r7", "h3_r9", "market"),
    "consent": (
        "consent_captured_at",
        "consent_text",
        "consent_url",
        "consent_ip",
        "consent_user_agent",
        "consent_certificate_url",
    ),
}
SINGLE_FIELDS = (
    "kind",
    "property_type",
    "beds",
    "baths",
    "living_area_sqft",
    "lot_size_sqft",
    "year_built",
    "list_price_cents",
    "days_on_market",
    "parcel_number",
    "listing_status",
    "description",
)
_GROUP_LEAD = {
    "name": ("first_name", "last_name"),
    "phone": ("phone",),
    "email": ("email",),
    "address": ("address_line1",),
    "location": ("latitude",),
    "consent": ("consent_captured_at", "consent_text"),
}
_PRECISION_RANK = {"source": 0, "zip": 1, "city": 2}


@dataclass(frozen=True, slots=True)
class Contribution:
    """One source record's normalised fields, with what survivorship needs to rank it."""

    record_id: str
    source: str
    source_key: str
    trust: float
    seen_at: datetime
    fields: Fields


def _ranked(records: Sequence[Contribution]) -> list[Contribution]:
    # Most trusted first, then freshest.
    return sorted(records, key=lambda r: (-r.trust, -r.seen_at.timestamp()))


def derive_public(values: dict[str, Any]) -> None:
    """What a golden record shows and searches before it is bought, set in `values` from its
    fields: the public point (about 1 km), the description with contact details redacted, and
    the words text search indexes."""
    values["public_latitude"], values["public_longitude"] = public_point(
        values.get("latitude"), values.get("longitude")
    )
    values["public_description"] = redact(
        values.get("description"),
        first_name=values.get("first_name"),
        last_name=values.get("last_name"),
        street_number=values.get("street_number"),
        street_name=values.get("street_name"),
        unit_number=values.get("unit_number"),
        shown=shown_numbers(values),
    )
    values["search_text"] = search_text(
        values.get("street_name"), values.get("city"), values["public_description"]
    )


def survive(records: Sequence[Contribution]) -> tuple[Fields, dict[str, Any]]:
    """The golden record's fields and their provenance (which record each came from), in the
    stored form: `{"records": [{"record_id", "source", "source_key", "fields": [...]}]}`, one
    entry per record that gave the golden record a field (see `field_origins`)."""
    ranked = _ranked(records)
    golden: Fields = {}
    given: dict[int, list[str]] = {}  # id(record) -> the fields it gave, in field order

    for group, members in FIELD_GROUPS.items():
        candidates = [r for r in ranked if any(r.fields.get(k) for k in _GROUP_LEAD[group])]
        if group == "location":
            candidates.sort(
                key=lambda r: _PRECISION_RANK.get(r.fields.get("geocode_precision") or "", 9)
            )
        chosen = candidates[0] if candidates else None
        for name in members:
            golden[name] = chosen.fields.get(name) if chosen else None
            if chosen is not None and golden[name] is not None:
                given.setdefault(id(chosen), []).append(name)
    for name in SINGLE_FIELDS:
        chosen = next((r for r in ranked if r.fields.get(name) is not None), None)
        golden[name] = chosen.fields[name] if chosen else None
        if chosen is not None:
            given.setdefault(id(chosen), []).append(name)
    golden["email_disposable"] = bool(golden.get("email_disposable"))
    derive_public(golden)
    attributes: dict[str, Any] = {}
    for r in reversed(ranked):
        attributes.update(r.fields.get("attributes") or {})
    golden["attributes"] = attributes
    provenance = {
        "records": [
            {
                "record_id": r.record_id,
                "source": r.source,
                "source_key": r.source_key,
                "fields": given[id(r)],
            }
            for r in ranked
            if id(r) in given
        ]
    }
    return golden, provenance


def field_origins(provenance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Provenance by golden field, `{"phone": {"record_id", "source", "source_key"}, ...}`, as
    the admin API shows it. Stored, it is grouped by record (`survive`): each origin once
    instead of once per field, which kept a lead's row at 5.3 KB (3.8 KB of provenance) and
    made SQLite spill every lead to overflow pages. Rows written before 2026-12-03 hold the
    by-field form and are returned as they are."""
    records = provenance.get("records")
    if not isinstance(records, list):
        return provenance
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        origin = {k: record[k] for k in ("record_id", "source", "source_key")}
        for name in record["fields"]:
            out[name] = origin
    return out


def conflicting_facts(records: Sequence[Contribution]) -> list[str]:
    """Facts that merged records disagree on (a fraud signal: someone re-posting a lead)."""
    conflicts = []
    for name, tolerance in (("beds", 0), ("list_price_cents", 0.25), ("year_built", 1)):
        values = [float(r.fields[name]) for r in records if r.fields.get(name) is not None]
        if len(values) < 2:
            continue
        low, high = min(values), max(values)
        if name == "list_price_cents":
            if low and (high - low) / low > tolerance:
                conflicts.append(name)
        elif high - low > tolerance:
            conflicts.append(name)
    return conflicts
