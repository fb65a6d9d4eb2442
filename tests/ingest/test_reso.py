"""The RESO connector against a RESO Web API server on loopback (OAuth2 client credentials,
OData paging), and its reading of Data Dictionary listings."""

from __future__ import annotations

import base64
import logging
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from aiqleads.ingest.connectors.base import Candidate, ParseError, RawRecord
from aiqleads.ingest.connectors.http import SourceUnavailable
from aiqleads.ingest.connectors.reso import ResoConnector, SourceAuthError
from aiqleads.ingest.models import IngestionRun, RunStatus, SourceRecord
from aiqleads.ingest.service import execute_replay, run_source, start_replay
from aiqleads.ingest.sources import SourceCatalog, SourceConfig
from aiqleads.ingest.tasks import schedule
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.models import Lead
from aiqleads.runtime import JobContext, Runtime
from tests.ingest.loopback import serve

CLIENT_ID = "aiq-client"
CLIENT_SECRET = "s3cr3t/with+odd=chars-9f8e7d"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def listing(n: int, **fields: Any) -> dict[str, Any]:
    """A minimal active listing, modified n hours after T0."""
    return {
        "ListingKey": f"LK{n:03d}",
        "StandardStatus": "Active",
        "ModificationTimestamp": (T0 + timedelta(hours=n)).isoformat().replace("+00:00", "Z"),
        "ListPrice": 300_000 + n,
        **fields,
    }


class FakeResoServer:
    """A RESO Web API server as the spec describes it, with failures scripted by the test."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.listings: list[dict[str, Any]] = [listing(n) for n in range(1, 6)]
        self.expires_in = 3600
        self.tokens_issued: list[str] = []
        self.valid_tokens: set[str] = set()
        self.token_forms: list[dict[str, list[str]]] = []
        self.data_requests: list[tuple[str, dict[str, str]]] = []  # (bearer token, query)
        self.unauthorised = 0
        self.script: list[Response] = []  # answered, in order, before any real page
        self.broken_skip: str | None = None  # the page at this $skip answers 400

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/reso/odata/Property", self.property, methods=["GET"]),
            ]
        )

    async def token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        self.token_forms.append(form)
        if form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        if scheme != "Basic" or (unquote_plus(user), unquote_plus(password)) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": f"bad secret {password}"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="reso"'},
            )
        token = f"tok-{len(self.tokens_issued) + 1}"
        self.tokens_issued.append(token)
        self.valid_tokens.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    async def property(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        query = dict(request.query_params)
        self.data_requests.append((token, query))
        if scheme != "Bearer" or token not in self.valid_tokens:
            self.unauthorised += 1
            return JSONResponse({"error": {"code": "401", "message": "Unauthorized"}}, 401)
        if self.script:
            return self.script.pop(0)
        if self.broken_skip is not None and query.get("$skip") == self.broken_skip:
            return JSONResponse({"error": {"message": "internal error"}}, 400)
        if query.get("$orderby") != "ModificationTimestamp asc":
            return JSONResponse({"error": {"message": "unsupported $orderby"}}, 400)
        rows = sorted(self.listings, key=lambda row: row["ModificationTimestamp"])
        if "$filter" in query:
            match = re.fullmatch(r"ModificationTimestamp (gt|ge) (\S+Z)", query["$filter"])
            if match is None:
                return JSONResponse({"error": {"message": "unsupported $filter"}}, 400)
            bound = datetime.fromisoformat(match[2])
            rows = [
                r
                for r in rows
                if (modified := datetime.fromisoformat(r["ModificationTimestamp"])) > bound
                or (match[1] == "ge" and modified == bound)
            ]
        top, skip = int(query.get("$top", 100)), int(query.get("$skip", 0))
        base = str(request.base_url).rstrip("/")
        body: dict[str, Any] = {
            "@odata.context": f"{base}/reso/odata/$metadata#Property",
            "value": rows[skip : skip + top],
        }
        if skip + top < len(rows):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skip": skip + top}))
        return JSONResponse(body)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[FakeResoServer, str]]:
    fake = FakeResoServer()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def server(running: tuple[FakeResoServer, str]) -> FakeResoServer:
    fake, _ = running
    fake.reset()  # one socket for the module, a fresh server state per test
    return fake


@pytest.fixture
def source(running: tuple[FakeResoServer, str], monkeypatch: pytest.MonkeyPatch) -> SourceConfig:
    _, url = running
    monkeypatch.setenv("TEST_RESO_ID", CLIENT_ID)
    monkeypatch.setenv("TEST_RESO_SECRET", CLIENT_SECRET)
    return SourceConfig(
        slug="test-mls",
        name="Test MLS",
        type="reso",
        options={
            "base_url": f"{url}/reso/odata",
            "token_url": f"{url}/oauth/token",
            "page_size": 2,
            "scope": "api",
        },
        credentials={"client_id": "TEST_RESO_ID", "client_secret": "TEST_RESO_SECRET"},
    )


class FakeSleep:
    """Records the delays asked for instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    # Built once: a new client would otherwise load the CA bundle again, ~40 ms per test.
    return ssl.create_default_context()


@pytest.fixture
async def http(tls: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, verify=tls) as client:
        yield client


@pytest.fixture
def connector(
    source: SourceConfig, http: httpx.AsyncClient, clock: FrozenClock, sleep: FakeSleep
) -> ResoConnector:
    return ResoConnector(source, http, clock=clock, sleep=sleep)


async def fetch_all(connector: ResoConnector, since: datetime | None = None) -> list[RawRecord]:
    return [record async for record in connector.fetch(since)]


async def test_full_sync_returns_every_listing_once_in_order(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    records = await fetch_all(connector)

    assert [r.source_key for r in records] == ["LK001", "LK002", "LK003", "LK004", "LK005"]
    assert records[0].payload == server.listings[0]
    assert records[0].source_updated_at == T0 + timedelta(hours=1)
    assert [q.get("$skip") for _, q in server.data_requests] == [None, "2", "4"]
    assert all(q["$top"] == "2" and "$filter" not in q for _, q in server.data_requests)
    # One token for the whole run, asked for with the configured scope.
    assert server.tokens_issued == ["tok-1"]
    assert {token for token, _ in server.data_requests} == {"tok-1"}
    assert server.token_forms[0]["scope"] == ["api"]


async def test_incremental_sync_filters_by_modification_timestamp(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    # 2026-01-01T02:00Z written in another zone: the filter is always UTC with Z.
    since = (T0 + timedelta(hours=2)).astimezone(timezone(timedelta(hours=-5)))

    records = await fetch_all(connector, since)

    # The records of `since` itself come again: a failed run may have stored only some.
    assert [r.source_key for r in records] == ["LK002", "LK003", "LK004", "LK005"]
    first_query = server.data_requests[0][1]
    assert first_query["$filter"] == "ModificationTimestamp ge 2026-01-01T02:00:00Z"


async def test_token_refreshed_after_expiry(
    connector: ResoConnector, server: FakeResoServer, clock: FrozenClock
) -> None:
    records = connector.fetch(None)
    first_page = [await anext(records), await anext(records)]
    clock.advance(timedelta(seconds=server.expires_in - 30))
    rest = [r async for r in records]

    assert len(first_page + rest) == 5
    assert server.tokens_issued == ["tok-1", "tok-2"]
    assert [token for token, _ in server.data_requests] == ["tok-1", "tok-2", "tok-2"]


async def test_token_refreshed_once_after_401(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    records = connector.fetch(None)
    first_page = [await anext(records), await anext(records)]
    server.valid_tokens.clear()  # the MLS revokes the token mid-run
    rest = [r async for r in records]

    assert [r.source_key for r in first_page + rest] == [f"LK00{n}" for n in range(1, 6)]
    assert server.tokens_issued == ["tok-1", "tok-2"]
    assert server.unauthorised == 1


async def test_429_waits_for_retry_after(
    connector: ResoConnector, server: FakeResoServer, sleep: FakeSleep
) -> None:
    server.script = [JSONResponse({}, 429, headers={"Retry-After": "7"})]

    records = await fetch_all(connector)

    assert len(records) == 5
    assert sleep.delays == [7.0]


async def test_503_twice_then_success(
    connector: ResoConnector, server: FakeResoServer, sleep: FakeSleep
) -> None:
    server.script = [Response(status_code=503), Response(status_code=503)]

    records = await fetch_all(connector)

    assert len(records) == 5
    assert len(sleep.delays) == 2


async def test_persistent_500_makes_the_source_unavailable(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    server.script = [Response(status_code=500) for _ in range(10)]

    with pytest.raises(SourceUnavailable, match="500"):
        await fetch_all(connector)


async def test_bad_credentials_give_a_clear_error_without_the_secret(
    connector: ResoConnector,
    server: FakeResoServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "wrong-secret-do-not-log-42"
    monkeypatch.setenv("TEST_RESO_SECRET", wrong)
    caplog.set_level(logging.DEBUG)

    with capture_logs() as logs, pytest.raises(SourceAuthError) as caught:
        await fetch_all(connector)

    message = str(caught.value)
    assert "refused the client credentials" in message
    assert "401" in message
    assert "invalid_client" in message
    out = capsys.readouterr()
    logged = " ".join([repr(logs), caplog.text, out.out, out.err])
    assert "reso_token_refused" in logged
    for text in (message, repr(caught.value), logged):
        assert wrong not in text
        assert CLIENT_SECRET not in text
    assert server.data_requests == []


async def test_missing_credentials_name_the_variable(
    connector: ResoConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_RESO_SECRET")

    with pytest.raises(SourceAuthError, match=r"client_secret \(env TEST_RESO_SECRET\)"):
        await fetch_all(connector)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (HTMLResponse("<html><body>Down for maintenance</body></html>"), "not JSON"),
        (JSONResponse([{"ListingKey": "LK1"}]), "not an OData collection"),
        (JSONResponse({"@odata.context": "x", "value": None}), "not an OData collection"),
    ],
)
async def test_unreadable_body_makes_the_source_unavailable(
    connector: ResoConnector, server: FakeResoServer, answer: Response, expected: str
) -> None:
    server.script = [answer]

    with pytest.raises(SourceUnavailable, match=expected):
        await fetch_all(connector)


async def test_next_link_to_another_host_is_not_followed(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    server.script = [
        JSONResponse({"value": [listing(1)], "@odata.nextLink": "http://evil.example/odata"})
    ]

    with pytest.raises(SourceUnavailable, match="another host"):
        await fetch_all(connector)


async def test_listing_without_key_is_yielded_for_quarantine(
    connector: ResoConnector, server: FakeResoServer
) -> None:
    keyless = listing(6)
    del keyless["ListingKey"]
    server.listings = [keyless]

    first, again = await fetch_all(connector), await fetch_all(connector)

    assert first[0].source_key == again[0].source_key
    assert first[0].source_key.startswith("sha256:")
    with pytest.raises(ParseError) as caught:
        connector.parse(first[0])
    assert caught.value.code == "missing_source_key"


RESO_LISTING: dict[str, Any] = {
    "@odata.id": "https://api.example-mls.com/reso/odata/Property('3yd-ABC-1234567')",
    "ListingKey": "3yd-ABC-1234567",
    "ListingId": "ABC1234567",
    "ListAgentKey": "AG-77",
    "ListOfficeKey": "OF-12",
    "MlsStatus": "Expired",
    "StandardStatus": "Expired",
    "ModificationTimestamp": "2026-02-10T14:03:22.123Z",
    "ListPrice": 525000,
    "PropertyType": "Residential",
    "PropertySubType": "Condominium",
    "UnparsedAddress": "1201 N Lake Shore Dr Unit 4B, Chicago, IL 60610",
    "StreetNumber": "1201",
    "StreetDirPrefix": "N",
    "StreetName": "Lake Shore",
    "StreetSuffix": "Dr",
    "StreetDirSuffix": None,
    "UnitNumber": "4B",
    "City": "Chicago",
    "StateOrProvince": "IL",
    "PostalCode": "60610",
    "Latitude": 41.9036,
    "Longitude": -87.6268,
    "BedroomsTotal": 2,
    "BathroomsTotalInteger": 2,
    "BathroomsTotalDecimal": 1.5,
    "LivingArea": 100,
    "LivingAreaUnits": "Square Meters",
    "LotSizeArea": 0.25,
    "LotSizeUnits": "Acres",
    "YearBuilt": 1968,
    "DaysOnMarket": 187,
    "ParcelNumber": "17-03-203-045-1012",
    "PublicRemarks": "Bright corner unit with lake views.",
    "OwnerName": "Kowalski, Anna",
    "OwnerPhone": "(312) 555-0142",
    "OwnerEmail": "anna.k@example.com",
}


def parse(connector: ResoConnector, payload: Any) -> Candidate:
    return connector.parse(RawRecord(source_key="k", payload=payload))


def test_parse_maps_the_data_dictionary_fields(connector: ResoConnector) -> None:
    candidate = parse(connector, RESO_LISTING)

    assert candidate == Candidate(
        kind="expired_listing",
        first_name="Anna",
        last_name="Kowalski",
        full_name="Kowalski, Anna",
        phone="(312) 555-0142",
        email="anna.k@example.com",
        street="1201 N Lake Shore Dr",
        unit="4B",
        city="Chicago",
        state="IL",
        postal_code="60610",
        latitude=41.9036,
        longitude=-87.6268,
        property_type="condo",
        beds=2,
        baths=1.5,
        living_area_sqft=1076,  # 100 m²
        lot_size_sqft=10890,  # 0.25 acres
        year_built=1968,
        list_price=525000,
        days_on_market=187,
        parcel_number="17-03-203-045-1012",
        listing_status="Expired",
        description="Bright corner unit with lake views.",
        extra={
            "ListAgentKey": "AG-77",
            "ListOfficeKey": "OF-12",
            "ListingId": "ABC1234567",
            "MlsStatus": "Expired",
        },
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"StandardStatus": "Active"}, "seller"),
        ({"StandardStatus": "Coming Soon"}, "seller"),
        ({"StandardStatus": "ActiveUnderContract"}, "seller"),
        ({"StandardStatus": "Withdrawn"}, "expired_listing"),
        ({"StandardStatus": "Canceled"}, "expired_listing"),
    ],
)
def test_status_decides_the_kind(
    connector: ResoConnector, fields: dict[str, Any], expected: str
) -> None:
    assert parse(connector, {**RESO_LISTING, **fields}).kind == expected


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({**RESO_LISTING, "StandardStatus": "Closed"}, "listing_closed"),
        ({**RESO_LISTING, "StandardStatus": "Bogus"}, "unknown_status"),
        ({k: v for k, v in RESO_LISTING.items() if k != "ListingKey"}, "missing_source_key"),
        ({**RESO_LISTING, "PropertyType": "Residential Lease"}, "lease_listing"),
        ({**RESO_LISTING, "City": {"name": "Chicago"}}, "invalid_field"),
        (["not", "an", "object"], "invalid_payload"),
    ],
)
def test_records_that_are_not_leads_are_quarantined(
    connector: ResoConnector, payload: Any, code: str
) -> None:
    with pytest.raises(ParseError) as caught:
        parse(connector, payload)
    assert caught.value.code == code


def test_raw_values_pass_through_for_the_pipeline(connector: ResoConnector) -> None:
    candidate = parse(connector, {**RESO_LISTING, "ListPrice": "abc", "OwnerName": "Mary Ann Lee"})

    assert candidate.list_price == "abc"
    assert (candidate.first_name, candidate.last_name) == ("Mary Ann", "Lee")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"LotSizeArea": 1.5, "LotSizeUnits": "Acres"}, 65340),
        ({"LotSizeArea": 5000, "LotSizeUnits": "Square Feet"}, 5000),
        ({"LotSizeArea": None, "LotSizeSquareFeet": 7405}, 7405),
    ],
)
def test_lot_size_in_square_feet(
    connector: ResoConnector, fields: dict[str, Any], expected: int
) -> None:
    assert parse(connector, {**RESO_LISTING, **fields}).lot_size_sqft == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"PropertyType": "Residential", "PropertySubType": "Single Family Residence"},
            "single_family",
        ),
        ({"PropertyType": "Residential", "PropertySubType": "Townhouse"}, "townhouse"),
        ({"PropertyType": "Residential Income", "PropertySubType": "Duplex"}, "multi_family"),
        ({"PropertyType": "Residential Income", "PropertySubType": None}, "multi_family"),
        ({"PropertyType": "Land", "PropertySubType": None}, "land"),
        ({"PropertyType": "Commercial Sale", "PropertySubType": None}, "commercial"),
        ({"PropertyType": "Residential", "PropertySubType": "Mobile Home"}, "other"),
    ],
)
def test_property_type_mapping(
    connector: ResoConnector, fields: dict[str, Any], expected: str
) -> None:
    assert parse(connector, {**RESO_LISTING, **fields}).property_type == expected


async def test_a_scheduled_run_ingests_expired_listings_incrementally(
    runtime: Runtime, server: FakeResoServer, source: SourceConfig
) -> None:
    address = {"City": "Las Vegas", "StateOrProvince": "NV", "PostalCode": "89102"}
    server.listings = [
        listing(1, StandardStatus="Expired", UnparsedAddress="4500 W Sahara Ave", **address),
        listing(2, StandardStatus="Canceled", UnparsedAddress="12 Oak St", **address),
        listing(3, StandardStatus="Closed", UnparsedAddress="9 Elm St", **address),
    ]
    first = await run_source(runtime, source, trigger="schedule")
    assert first.status is RunStatus.SUCCEEDED
    assert first.counts["accepted"] == 2
    assert first.quarantined_by_reason == {"listing_closed": 1}
    async with runtime.transaction(write=False) as session:
        kinds = set(await session.scalars(sa.select(Lead.kind)))
    assert kinds == {"expired_listing"}

    server.listings.append(
        listing(4, StandardStatus="Withdrawn", UnparsedAddress="7 Pine St", **address)
    )
    second = await run_source(runtime, source, trigger="schedule")
    # Only what changed since the last run is asked for and fetched (and the last run's
    # newest listing again, which comes back unchanged).
    assert server.data_requests[-1][1]["$filter"] == "ModificationTimestamp ge 2026-01-01T03:00:00Z"
    assert second.counts["fetched"] == 2
    assert (second.counts["accepted"], second.counts["unchanged"]) == (1, 1)


async def test_the_scheduler_starts_due_sources_through_the_job_system(
    runtime: Runtime, server: FakeResoServer, source: SourceConfig, clock: FrozenClock
) -> None:
    scheduled = source.model_copy(update={"schedule_seconds": 900})
    runtime.sources = SourceCatalog([scheduled])
    await schedule.fn(JobContext(runtime))
    await runtime.jobs.wait_idle()
    await schedule.fn(JobContext(runtime))  # not due again yet
    await runtime.jobs.wait_idle()
    clock.advance(timedelta(seconds=900))
    await schedule.fn(JobContext(runtime))
    await runtime.jobs.wait_idle()
    async with runtime.transaction(write=False) as session:
        runs = list(
            await session.scalars(sa.select(IngestionRun).order_by(IngestionRun.started_at))
        )
    assert [(r.trigger, r.status) for r in runs] == [("schedule", RunStatus.SUCCEEDED)] * 2
    assert runs[0].counts["fetched"] == 5
    # Incremental: nothing changed since the first run, only its newest listing comes again.
    assert (runs[1].counts["fetched"], runs[1].counts["unchanged"]) == (1, 1)


EXPIRED_AT = {"StandardStatus": "Expired", "City": "Las Vegas", "StateOrProvince": "NV"}


def expired(n: int, hours: int | None = None) -> dict[str, Any]:
    """An expired Las Vegas listing, modified `hours` (default n) hours after T0."""
    row = listing(n, UnparsedAddress=f"{n} Main St", PostalCode="89102", **EXPIRED_AT)
    when = T0 + timedelta(hours=n if hours is None else hours)
    row["ModificationTimestamp"] = when.isoformat().replace("+00:00", "Z")
    return row


async def stored_keys(runtime: Runtime, source: SourceConfig) -> set[str]:
    async with runtime.transaction(write=False) as session:
        return set(
            await session.scalars(
                sa.select(SourceRecord.source_key).where(SourceRecord.source == source.slug)
            )
        )


async def test_a_replay_of_a_run_parses_its_records_again_without_fetching(
    runtime: Runtime, server: FakeResoServer, source: SourceConfig
) -> None:
    server.listings = [expired(1), expired(2)]
    runtime.sources = SourceCatalog([source])
    first = await run_source(runtime, source, trigger="schedule")
    assert first.status is RunStatus.SUCCEEDED
    requests = len(server.data_requests)

    async with runtime.transaction() as session:
        replay = await start_replay(session, runtime, first.id)
    done = await execute_replay(runtime, replay.id)

    assert done is not None
    assert done.status is RunStatus.SUCCEEDED, done.errors
    assert (done.counts["fetched"], done.counts["unchanged"]) == (2, 2)
    assert len(server.data_requests) == requests  # the MLS is not asked again


async def test_a_failed_run_loses_no_record_sharing_its_last_timestamp(
    runtime: Runtime, server: FakeResoServer, source: SourceConfig
) -> None:
    # LK002 and LK003 changed in the same second (a bulk status change at the MLS), and the
    # page after LK003's fails: the first batch (LK001, LK002) is stored, LK003's is not.
    server.listings = [expired(1), expired(2), expired(3, hours=2), *map(expired, (4, 5, 6))]
    server.broken_skip = "4"
    first = await run_source(runtime, source, trigger="schedule", batch_size=2)
    assert first.status is RunStatus.FAILED
    assert await stored_keys(runtime, source) == {"LK001", "LK002"}

    server.broken_skip = None  # the MLS is fine again
    second = await run_source(runtime, source, trigger="schedule", batch_size=2)

    assert second.status is RunStatus.SUCCEEDED
    assert await stored_keys(runtime, source) == {f"LK00{n}" for n in range(1, 7)}


async def test_a_listing_stamped_in_the_future_does_not_stop_incremental_sync(
    runtime: Runtime,
    server: FakeResoServer,
    source: SourceConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    typo = expired(1)
    typo["ModificationTimestamp"] = "2206-01-01T00:00:00Z"  # 2026 keyed as 2206 at the MLS
    server.listings = [typo, expired(2)]
    first = await run_source(runtime, source, trigger="schedule")
    assert first.status is RunStatus.SUCCEEDED
    assert "source_timestamp_in_future" in caplog.text  # the operator can see which listing
    assert "LK001" in caplog.text

    server.listings.append(expired(3))  # a listing that expired since
    second = await run_source(runtime, source, trigger="schedule")

    assert second.counts["accepted"] == 1
    assert "LK003" in await stored_keys(runtime, source)
