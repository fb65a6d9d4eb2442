"""RESO Web API (OData) connector: listings pulled by ModificationTimestamp with OAuth2
client credentials, read into candidates by the RESO Data Dictionary field names."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import structlog

from aiqleads.ingest.connectors.base import (
    Candidate,
    ParseError,
    RawRecord,
    RawValue,
    content_hash,
)
from aiqleads.ingest.connectors.http import Sleep, SourceUnavailable, send_with_retry
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.clock import Clock
from aiqleads.quality.normalise import parse_datetime

log = structlog.get_logger(__name__)

DEFAULT_RESOURCE = "Property"
DEFAULT_PAGE_SIZE = 200
# Refresh this long before the server says the token expires, so a page never starts with a
# token that dies in flight.
TOKEN_EXPIRY_MARGIN = timedelta(seconds=60)

SQFT_PER_SQM = 10.763910416709722
SQFT_PER_ACRE = 43_560

# StandardStatus, compared without spaces and case: some servers send the OData enum member
# names ("ActiveUnderContract") instead of the display values ("Active Under Contract").
_SELLER_STATUSES = frozenset({"active", "comingsoon", "pending", "activeundercontract"})
_EXPIRED_STATUSES = frozenset({"expired", "withdrawn", "canceled", "cancelled"})
_CLOSED_STATUSES = frozenset({"closed"})

# A rental listing's owner is a landlord, not a seller: not a lead we sell.
_LEASE_TYPES = frozenset({"residentiallease", "commerciallease"})

_SUBTYPE_TO_TYPE = {
    "singlefamilyresidence": "single_family",
    "singlefamilydetached": "single_family",
    "condominium": "condo",
    "stockcooperative": "condo",
    "ownyourown": "condo",
    "townhouse": "townhouse",
    "duplex": "multi_family",
    "triplex": "multi_family",
    "quadruplex": "multi_family",
    "multifamily": "multi_family",
    "unimprovedland": "land",
    "office": "commercial",
    "retail": "commercial",
    "industrial": "commercial",
    "warehouse": "commercial",
    "mixeduse": "commercial",
}
# Used only when PropertySubType is absent or unknown. Plain "Residential" stays "other":
# calling a condo single_family would put it in the wrong buyer's search.
_TYPE_TO_TYPE = {
    "residentialincome": "multi_family",
    "land": "land",
    "farm": "land",
    "commercialsale": "commercial",
    "businessopportunity": "commercial",
}

_EXTRA_FIELDS = ("ListAgentKey", "ListOfficeKey", "ListingId", "MlsStatus")
_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class SourceAuthError(SourceUnavailable):
    """The token endpoint refused our client credentials, or they are not configured."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: datetime | None  # None: no expiry given; used until the server answers 401


class ResoConnector:
    """Pulls one RESO Web API resource (Property by default) for one configured source.
    Without a `client` it only parses (a replay of stored records)."""

    def __init__(
        self,
        source: SourceConfig,
        client: httpx.AsyncClient | None,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        options = source.options
        self._source = source
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._base_url = _required_option(source, "base_url").rstrip("/")
        self._token_url = _required_option(source, "token_url")
        self._resource = str(options.get("resource") or DEFAULT_RESOURCE)
        self._scope: str | None = options.get("scope") or None
        page_size = options.get("page_size", DEFAULT_PAGE_SIZE)
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ValueError(f"source {source.slug!r}: option page_size must be a positive int")
        self._page_size = page_size
        self._token: _Token | None = None

    async def fetch(self, since: datetime | None) -> AsyncIterator[RawRecord]:
        """Records modified at or after `since` (all when None), oldest first, page by page.
        Those of `since` itself come again (stored already, they come back unchanged): a run
        that failed may have stored only some of the records sharing its last timestamp."""
        url: str | None = self._first_url(since)
        while url is not None:
            page = await self._get_page(url)
            for item in page["value"]:
                yield _raw_record(item)
            url = self._next_url(page, url)

    def parse(self, record: RawRecord) -> Candidate:
        """Read one RESO listing; closed, lease and unknown-status listings are not leads."""
        item: Any = record.payload
        if not isinstance(item, dict):
            raise ParseError("invalid_payload", "a RESO record must be a JSON object")
        if _text(item, "ListingKey") is None:
            raise ParseError("missing_source_key", "listing has no ListingKey", "ListingKey")
        if _key(_text(item, "PropertyType")) in _LEASE_TYPES:
            raise ParseError(
                "lease_listing", "a rental listing is not a seller lead", "PropertyType"
            )
        first, last = _split_name(_text(item, "OwnerName"))
        return Candidate(
            kind=_kind(item),
            first_name=first,
            last_name=last,
            full_name=_text(item, "OwnerName"),
            phone=_text(item, "OwnerPhone"),
            email=_text(item, "OwnerEmail"),
            street=_street(item),
            unit=_text(item, "UnitNumber"),
            city=_text(item, "City"),
            state=_text(item, "StateOrProvince"),
            postal_code=_text(item, "PostalCode"),
            latitude=_raw(item, "Latitude"),
            longitude=_raw(item, "Longitude"),
            property_type=_property_type(item),
            beds=_raw(item, "BedroomsTotal"),
            baths=_baths(item),
            living_area_sqft=_living_area(item),
            lot_size_sqft=_lot_size(item),
            year_built=_raw(item, "YearBuilt"),
            list_price=_raw(item, "ListPrice"),
            days_on_market=_raw(item, "DaysOnMarket"),
            parcel_number=_text(item, "ParcelNumber"),
            listing_status=_text(item, "StandardStatus"),
            description=_text(item, "PublicRemarks"),
            extra={name: item[name] for name in _EXTRA_FIELDS if item.get(name) is not None},
        )

    def _first_url(self, since: datetime | None) -> str:
        query = [("$orderby", "ModificationTimestamp asc"), ("$top", str(self._page_size))]
        if since is not None:
            query.insert(0, ("$filter", f"ModificationTimestamp ge {_odata_timestamp(since)}"))
        # Built by hand: httpx would send "%24filter" and "+" for spaces, which some OData
        # servers do not decode; "$" and "%20" are what the OData URL conventions show.
        encoded = "&".join(f"{name}={quote(value, safe=':')}" for name, value in query)
        return f"{self._base_url}/{quote(self._resource)}?{encoded}"

    def _next_url(self, page: Mapping[str, Any], current: str) -> str | None:
        link = page.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            raise SourceUnavailable(f"{self._host}: @odata.nextLink is not a URL")
        url = httpx.URL(current).join(link)
        origin = self._origin
        # The bearer token goes with every page, so only ever to the server we configured.
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise SourceUnavailable(f"{self._host}: @odata.nextLink points to another host")
        if str(url) == current:
            raise SourceUnavailable(f"{self._host}: @odata.nextLink repeats the current page")
        # Absolute links are used verbatim: the server may encode its skiptoken its own way.
        return link if httpx.URL(link).is_absolute_url else str(url)

    async def _get_page(self, url: str) -> dict[str, Any]:
        response = await self._send_data(url, await self._access_token())
        if response.status_code == 401:
            # Revoked or expired early on the server side: one fresh token, one more try.
            log.info("reso_token_rejected", source=self._source.slug)
            self._token = None
            response = await self._send_data(url, await self._access_token())
            if response.status_code == 401:
                raise SourceAuthError(f"{self._host} rejected a freshly issued access token (401)")
        if not response.is_success:
            raise SourceUnavailable(
                f"{self._host} answered {response.status_code} for {self._resource}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            content_type = response.headers.get("content-type", "none")
            raise SourceUnavailable(
                f"{self._host} answered {self._resource} with a body that is not JSON "
                f"(Content-Type: {content_type})"
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise SourceUnavailable(
                f"{self._host} answered {self._resource} with JSON that is not an OData "
                "collection (no 'value' array)"
            )
        return body

    async def _send_data(self, url: str, token: str) -> httpx.Response:
        request = self._http.build_request(
            "GET",
            url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        return await send_with_retry(self._http, request, sleep=self._sleep)

    async def _access_token(self) -> str:
        now = self._clock.now()
        cached = self._token
        if cached is not None and (cached.refresh_at is None or now < cached.refresh_at):
            return cached.value
        self._token = await self._request_token(now)
        return self._token.value

    async def _request_token(self, now: datetime) -> _Token:
        client_id = self._source.credential("client_id")
        client_secret = self._source.credential("client_secret")
        missing = [
            f"{name} (env {self._source.credentials.get(name, 'not mapped')})"
            for name, value in (("client_id", client_id), ("client_secret", client_secret))
            if value is None
        ]
        if client_id is None or client_secret is None:
            raise SourceAuthError(
                f"source {self._source.slug!r}: credentials not set: {', '.join(missing)}"
            )
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # RFC 6749 2.3.1: id and secret are form-urlencoded, then sent as HTTP Basic.
        pair = ":".join(
            quote_plus(secret.get_secret_value(), safe="") for secret in (client_id, client_secret)
        )
        request = self._http.build_request(
            "POST",
            self._token_url,
            data=form,
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii"),
                "Accept": "application/json",
            },
        )
        response = await send_with_retry(self._http, request, sleep=self._sleep)
        host = httpx.URL(self._token_url).host
        body = _json_object(response) or {}
        if not response.is_success:
            # Only the RFC 6749 error code is repeated: descriptions may echo what we sent.
            code = body.get("error")
            detail = f" ({code})" if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code) else ""
            log.warning("reso_token_refused", source=self._source.slug, status=response.status_code)
            raise SourceAuthError(
                f"{host} refused the client credentials of source {self._source.slug!r}: "
                f"{response.status_code}{detail}"
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceAuthError(f"{host} answered the token request without an access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise SourceAuthError(f"{host} issued a token of unsupported type {token_type!r}")
        return _Token(token, _refresh_at(now, body.get("expires_in")))

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise ValueError(f"source {self._source.slug} needs an HTTP client to fetch")
        return self._client

    @property
    def _origin(self) -> httpx.URL:
        return httpx.URL(self._base_url)

    @property
    def _host(self) -> str:
        return self._origin.host


def _required_option(source: SourceConfig, name: str) -> str:
    value = source.options.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"source {source.slug!r}: option {name} is required")
    return value


def _odata_timestamp(moment: datetime) -> str:
    """An OData DateTimeOffset literal in UTC, e.g. 2026-01-01T00:00:00Z."""
    if moment.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    # Whole seconds, rounded down: "ge" then may repeat a record of the same second, never skip.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refresh_at(now: datetime, expires_in: Any) -> datetime | None:
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    lifetime = timedelta(seconds=seconds)
    return now + lifetime - min(TOKEN_EXPIRY_MARGIN, lifetime / 2)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _raw_record(item: Any) -> RawRecord:
    key = item.get("ListingKey") if isinstance(item, dict) else None
    if key is None or key == "":
        # Still yielded so parse can quarantine it; the hash keeps the key stable across runs.
        source_key = "sha256:" + content_hash(item)
    else:
        source_key = str(key)
    updated = item.get("ModificationTimestamp") if isinstance(item, dict) else None
    return RawRecord(
        source_key=source_key,
        payload=item,
        source_updated_at=parse_datetime(updated, "ModificationTimestamp")[0],
    )


def _key(value: str | None) -> str | None:
    return re.sub(r"[\s_-]+", "", value).lower() if value else None


def _raw(item: Mapping[str, Any], name: str) -> RawValue:
    value = item.get(name)
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    raise ParseError("invalid_field", f"{name} must be a string or a number", name)


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = _raw(item, name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _kind(item: Mapping[str, Any]) -> str:
    status = _text(item, "StandardStatus")
    key = _key(status)
    if key in _SELLER_STATUSES:
        return "seller"
    if key in _EXPIRED_STATUSES:
        return "expired_listing"
    if key in _CLOSED_STATUSES:
        raise ParseError("listing_closed", "a sold home is not a lead", "StandardStatus")
    raise ParseError("unknown_status", f"StandardStatus {status!r} is not known", "StandardStatus")


def _street(item: Mapping[str, Any]) -> str | None:
    if _text(item, "StreetName") is None:
        return _text(item, "UnparsedAddress")
    parts = ("StreetNumber", "StreetDirPrefix", "StreetName", "StreetSuffix", "StreetDirSuffix")
    return " ".join(text for part in parts if (text := _text(item, part)) is not None)


def _property_type(item: Mapping[str, Any]) -> str | None:
    subtype = _key(_text(item, "PropertySubType"))
    if subtype in _SUBTYPE_TO_TYPE:
        return _SUBTYPE_TO_TYPE[subtype]
    main = _key(_text(item, "PropertyType"))
    if main in _TYPE_TO_TYPE:
        return _TYPE_TO_TYPE[main]
    return "other" if subtype or main else None


def _baths(item: Mapping[str, Any]) -> RawValue:
    # The decimal total keeps half baths (2.5); the integer total is a count of rooms.
    decimal = _raw(item, "BathroomsTotalDecimal")
    return decimal if decimal is not None else _raw(item, "BathroomsTotalInteger")


def _living_area(item: Mapping[str, Any]) -> RawValue:
    value = _raw(item, "LivingArea")
    unit = _key(_text(item, "LivingAreaUnits"))
    return _area(value, unit or "squarefeet", "LivingArea")


def _lot_size(item: Mapping[str, Any]) -> RawValue:
    square_feet = _raw(item, "LotSizeSquareFeet")
    if square_feet is not None:
        return square_feet
    area = _raw(item, "LotSizeArea")
    unit = _key(_text(item, "LotSizeUnits"))
    # Lots are given in acres as often as in square feet: without a unit we cannot tell.
    if area is not None and unit is not None:
        return _area(area, unit, "LotSizeArea")
    return _area(_raw(item, "LotSizeAcres"), "acres", "LotSizeAcres")


def _area(value: RawValue, unit: str, name: str) -> RawValue:
    """`value` in square feet: kept raw when already in square feet, else converted."""
    if value is None or unit == "squarefeet":
        return value
    factor = {"squaremeters": SQFT_PER_SQM, "acres": SQFT_PER_ACRE}.get(unit)
    if factor is None:
        raise ParseError("unknown_area_unit", f"{name} has an unknown unit", name)
    try:
        number = float(str(value).replace(",", ""))
    except ValueError as exc:
        raise ParseError("invalid_field", f"{name} is not a number", name) from exc
    return round(number * factor)


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    """("First", "Last") from "Last, First" or "First Last"; a single word splits to nothing."""
    if name is None:
        return None, None
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip() or None, last.strip() or None
    first, _, last = name.rpartition(" ")
    return (first.strip(), last) if first.strip() else (None, None)
