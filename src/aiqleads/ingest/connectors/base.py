"""The one small interface every lead source speaks: raw records in, candidate leads out.

A connector fetches `RawRecord`s (pull sources: RESO, CSV, listing pages) or is handed them
(push sources: Facebook, LinkedIn, web forms), and `parse`s each into a `Candidate`: the
source's values, still as the source wrote them. Cleaning is the pipeline's job, not the
connector's, so every source gets the same normalisation, validation and quarantine rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# A value as a source gave it: "$450K", 450000, "3.5", None ...
RawValue = str | int | float | None


class ParseError(Exception):
    """One record could not be read; it is quarantined with this code, never dropped."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(payload: Any) -> str:
    """A stable hash of a payload: key order and whitespace do not change it."""
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def storable(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The payload as it can be stored, and its content hash: a NUL character, which
    PostgreSQL's text and jsonb cannot hold, becomes U+FFFD (the record would otherwise fail
    its whole batch's INSERT). Only a payload holding one is copied."""
    text = _canonical(payload)
    if "\\u0000" in text:  # json.dumps writes NUL as this escape
        payload = _without_nul(payload)
        text = _canonical(payload)
    return payload, hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record exactly as received, kept so a run can be replayed.

    `payload` is JSON-serialisable: a RESO/Graph object as-is, a CSV row as a dict of
    column -> text, a listing page as {"url": ..., "html": ...}.
    """

    source_key: str
    payload: dict[str, Any]
    source_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    """What the consumer agreed to, as captured by the source (TCPA record)."""

    captured_at: RawValue = None
    text: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    certificate_url: str | None = None


@dataclass(slots=True)
class Candidate:
    """A parsed, not yet normalised lead: every field optional, values as the source wrote them."""

    kind: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    phone: str | None = None
    email: str | None = None
    # Street line as written ("123 N Main St Apt 4"); `unit` when the source splits it out.
    street: str | None = None
    unit: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    latitude: RawValue = None
    longitude: RawValue = None
    property_type: str | None = None
    beds: RawValue = None
    baths: RawValue = None
    living_area_sqft: RawValue = None
    lot_size_sqft: RawValue = None
    year_built: RawValue = None
    list_price: RawValue = None
    days_on_market: RawValue = None
    parcel_number: str | None = None
    listing_status: str | None = None
    description: str | None = None
    market: str | None = None
    consent: Consent | None = None
    # Anything else worth keeping (agent keys, form ids) ends up in the lead's attributes.
    extra: dict[str, Any] = field(default_factory=dict)


class PullConnector(Protocol):
    """A source we fetch from on a schedule."""

    def fetch(self, since: datetime | None) -> AsyncIterator[RawRecord]:
        """Records changed since `since` (all of them when None), in source order."""
        ...

    def parse(self, record: RawRecord) -> Candidate:
        """Read one record; raise `ParseError` when it cannot be read."""
        ...


class PushConnector(Protocol):
    """A source that sends us records (webhooks, form posts)."""

    def parse(self, record: RawRecord) -> Candidate: ...
