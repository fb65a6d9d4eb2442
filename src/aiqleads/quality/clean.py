"""The cleaning stages of the pipeline: normalise -> geocode -> market -> validate.

A `Candidate` goes in; a flat dict of normalised lead fields (the `Lead` column names) and
every problem found come out. Pure functions over one record: no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiqleads.ingest.connectors.base import Candidate
from aiqleads.kit.bulk import string_limits
from aiqleads.leads.models import LEAD_KINDS, Lead
from aiqleads.markets.catalog import MarketCatalog
from aiqleads.quality import normalise as n
from aiqleads.quality.geocode import assign_market, check_place, geocode
from aiqleads.quality.problems import Problem, error, warning

Fields = dict[str, Any]

# What a lead of each kind must have to be sold; anything missing quarantines it.
REQUIRED: dict[str, tuple[str, ...]] = {
    "seller": ("contact", "name", "address"),
    "buyer": ("contact", "name", "location"),
    "fsbo": ("contact", "address"),
    "expired_listing": ("address",),
    "solar_homeowner": ("contact", "name", "address"),
}
_KIND_ALIASES = {
    "for_sale_by_owner": "fsbo",
    "expired": "expired_listing",
    "solar": "solar_homeowner",
}

CURRENT_YEAR_LIMIT = 2100
# The longest value each lead column holds: a longer one (a "first name" of 200 characters)
# is quarantined with its field named, rather than failing the batch at INSERT.
MAX_LENGTHS = string_limits(Lead.__table__)  # type: ignore[arg-type]


@dataclass(slots=True)
class Cleaned:
    fields: Fields
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def normalise(candidate: Candidate, default_kind: str) -> Cleaned:
    """Every field to its canonical form; unrepairable values become None plus a problem."""
    problems: list[Problem] = []
    f: Fields = {}

    kind = (n.clean_text(candidate.kind) or default_kind).lower().replace(" ", "_")
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in LEAD_KINDS:
        problems.append(error("kind_unknown", f"lead kind {kind!r} is not one we sell", "kind"))
    f["kind"] = kind

    name, p = n.normalise_name(candidate.first_name, candidate.last_name, candidate.full_name)
    problems += p
    f["first_name"], f["last_name"] = name.first, name.last

    phone, p = n.normalise_phone(candidate.phone)
    problems += p
    f["phone"] = phone.e164 if phone else None
    f["phone_type"] = phone.line_type if phone else None

    email, p = n.normalise_email(candidate.email)
    problems += p
    f["email"] = email.address if email else None
    f["email_disposable"] = email.disposable if email else False

    address, p = n.normalise_address(
        candidate.street, candidate.unit, candidate.city, candidate.state, candidate.postal_code
    )
    problems += p
    if address is not None:
        f.update(
            street_number=address.street_number,
            street_pre_direction=address.street_pre_direction,
            street_name=address.street_name,
            street_suffix=address.street_suffix,
            street_post_direction=address.street_post_direction,
            unit_type=address.unit_type,
            unit_number=address.unit_number,
            address_line1=address.line1,
            address_line2=address.line2,
            city=address.city,
            state=address.state,
            postal_code=address.postal_code,
            zip4=address.zip4,
            address=address.one_line,
        )
    else:
        zip5, zip4, p = n.normalise_postal_code(candidate.postal_code)
        problems += p
        city = n.clean_text(candidate.city)
        state = n.clean_text(candidate.state)
        f.update(
            city=city.upper() if city else None,
            state=state.upper() if state and len(state) == 2 else None,
            postal_code=zip5,
            zip4=zip4,
        )

    lat, p = n.parse_number(candidate.latitude, "latitude", -90, 90)
    problems += p
    lon, p = n.parse_number(candidate.longitude, "longitude", -180, 180)
    problems += p
    f["latitude"], f["longitude"] = lat, lon

    ptype, p = n.normalise_property_type(candidate.property_type)
    problems += p
    f["property_type"] = ptype
    for key, raw, low, high, integer in (
        ("beds", candidate.beds, 0, 50, True),
        ("baths", candidate.baths, 0, 50, False),
        ("year_built", candidate.year_built, 1700, CURRENT_YEAR_LIMIT, True),
        ("days_on_market", candidate.days_on_market, 0, 20_000, True),
    ):
        f[key], p = n.parse_number(raw, key, low, high, integer=integer)
        problems += p
    f["living_area_sqft"], p = n.parse_area_sqft(
        candidate.living_area_sqft, "living_area_sqft", 100, 100_000
    )
    problems += p
    f["lot_size_sqft"], p = n.parse_area_sqft(candidate.lot_size_sqft, "lot_size_sqft", 100, 5e7)
    problems += p
    f["list_price_cents"], p = n.parse_price_cents(candidate.list_price)
    problems += p
    f["parcel_number"] = (n.clean_text(candidate.parcel_number) or "").upper() or None
    f["listing_status"] = n.clean_text(candidate.listing_status)
    f["description"] = n.clean_text(candidate.description)

    consent = candidate.consent
    if consent is not None:
        f["consent_captured_at"], p = n.parse_datetime(consent.captured_at, "consent_captured_at")
        problems += p
        f["consent_text"] = n.clean_text(consent.text)
        f["consent_url"] = n.clean_text(consent.url)
        f["consent_ip"] = n.clean_text(consent.ip)
        f["consent_user_agent"] = n.clean_text(consent.user_agent)
        f["consent_certificate_url"] = n.clean_text(consent.certificate_url)
    f["attributes"] = n.as_json_safe(candidate.extra)
    f["market_hint"] = n.clean_text(candidate.market)
    return Cleaned(f, problems)


def locate(cleaned: Cleaned, catalog: MarketCatalog) -> None:
    """Check ZIP/city/state, geocode offline and assign the market (in place)."""
    f = cleaned.fields
    cleaned.problems += check_place(f.get("postal_code"), f.get("city"), f.get("state"))
    point, p = geocode(
        f["latitude"], f["longitude"], f.get("postal_code"), f.get("city"), f.get("state")
    )
    cleaned.problems += p
    if point is None:
        f.update(latitude=None, longitude=None, geocode_precision=None, h3_r7=None, h3_r9=None)
        f["market"] = None
        return
    f.update(
        latitude=point.lat,
        longitude=point.lon,
        geocode_precision=point.precision,
        h3_r7=point.h3_coarse,
        h3_r9=point.h3_fine,
    )
    market = assign_market(catalog, point.lat, point.lon, f.get("state"))
    f["market"] = market.slug if market else None
    if market is None:
        cleaned.problems.append(
            error("outside_markets", "the lead is not in any market we serve", "market")
        )
    elif f.get("market_hint") and f["market_hint"] != market.slug:
        cleaned.problems.append(
            warning(
                "market_mismatch", f"source said {f['market_hint']}, location says {market.slug}"
            )
        )


def validate(cleaned: Cleaned) -> None:
    """Required fields per kind and column lengths; each gap is a coded error (in place)."""
    f = cleaned.fields
    for name, value in f.items():
        limit = MAX_LENGTHS.get(name)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            cleaned.problems.append(
                error("value_too_long", f"{len(value)} characters; at most {limit}", name)
            )
    for need in REQUIRED.get(f["kind"], ()):
        if need == "contact" and not (f.get("phone") or f.get("email")):
            cleaned.problems.append(
                error("missing_contact", "no valid phone number or e-mail", "phone")
            )
        elif need == "name" and not (f.get("first_name") or f.get("last_name")):
            cleaned.problems.append(error("missing_name", "no name", "first_name"))
        elif need == "address" and not f.get("address_line1"):
            cleaned.problems.append(error("missing_address", "no street address", "address"))
        elif need == "location" and not (f.get("postal_code") or f.get("city")):
            cleaned.problems.append(error("missing_location", "no ZIP or city", "postal_code"))


def clean(candidate: Candidate, default_kind: str, catalog: MarketCatalog) -> Cleaned:
    """Normalise, locate and validate one candidate."""
    cleaned = normalise(candidate, default_kind)
    locate(cleaned, catalog)
    validate(cleaned)
    return cleaned
