"""Listing-page sources against a web site on loopback: robots.txt, pace, retries, conditional
GET, and the reading of saved FSBO and classifieds pages."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from aiqleads.ingest.connectors.base import Candidate, ParseError, RawRecord
from aiqleads.ingest.connectors.fetcher import Disallowed, PoliteFetcher, Validators
from aiqleads.ingest.connectors.http import SourceUnavailable
from aiqleads.ingest.connectors.listings import (
    LISTING_SITES,
    MAX_FAILED_IN_A_ROW,
    ClassifiedsConnector,
    FsboSiteConnector,
)
from aiqleads.ingest.sources import SourceConfig
from tests.ingest.loopback import serve

PAGES = Path(__file__).parent / "pages"
USER_AGENT = "AIQLeadsBot/1.0 (+https://aiqleads.example/bot)"
ROBOTS = """\
User-agent: *
Disallow: /account/
Disallow: /listings/preview/
Crawl-delay: 2
"""
LAST_MODIFIED = "Mon, 12 Jan 2026 17:00:00 GMT"

DESERT_INN = "/listings/4821-w-desert-inn-rd-las-vegas-nv-89102"
BENT_WILLOW = "/listings/10392-bent-willow-ave-las-vegas-nv-89139"
CAMELBACK = "/listings/3925-e-camelback-rd-phoenix-az-85018"
BELL_RD = "/listings/2720-e-bell-rd-unit-1042-phoenix-az-85032"
PREVIEW = "/listings/preview/8830-n-central-ave-phoenix-az-85020"
DETAILS = {
    DESERT_INN: "fsbo_detail_1.html",
    BENT_WILLOW: "fsbo_detail_2.html",
    CAMELBACK: "fsbo_detail_3.html",
    BELL_RD: "fsbo_detail_4.html",
}
CLASSIFIEDS = "/housing/real-estate-for-sale"


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The structlog events named `event` that reached the standard logging handlers."""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == event
    ]


def page(name: str) -> str:
    return (PAGES / name).read_text("utf-8")


@dataclass(frozen=True)
class Hit:
    target: str  # path?query as requested
    status: int
    if_none_match: str | None
    user_agent: str | None


class FakeSite:
    """A small web site serving the saved pages, with ETags and scripted failures."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pages: dict[str, str] = {
            "/listings": page("fsbo_index_1.html"),
            "/listings?page=2": page("fsbo_index_2.html"),
            CLASSIFIEDS: page("classifieds_index.html"),
            **{path: page(name) for path, name in DETAILS.items()},
        }
        self.redirects: dict[str, str] = {}
        self.robots_status = 200
        self.fail_once: set[str] = set()  # answer 503 once, then the page
        self.broken: set[str] = set()  # answer 500 every time
        self.hits: list[Hit] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{rest:path}", self.handle)])

    async def handle(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = self._answer(target, request.headers.get("if-none-match"))
        self.hits.append(
            Hit(
                target,
                response.status_code,
                request.headers.get("if-none-match"),
                request.headers.get("user-agent"),
            )
        )
        return response

    def _answer(self, target: str, if_none_match: str | None) -> Response:
        if target == "/robots.txt":
            return PlainTextResponse(
                ROBOTS if self.robots_status == 200 else "no", self.robots_status
            )
        if target in self.fail_once:
            self.fail_once.discard(target)
            return PlainTextResponse("busy", 503, headers={"Retry-After": "1"})
        if target in self.broken:
            return PlainTextResponse("down", 500, headers={"Retry-After": "1"})
        if target in self.redirects:
            return RedirectResponse(self.redirects[target], 301)
        html = self.pages.get(target)
        if html is None:
            return PlainTextResponse("not found", 404)
        etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        if if_none_match == etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(html, headers=headers)

    def targets(self) -> list[str]:
        return [hit.target for hit in self.hits]


@dataclass
class FakeTime:
    """Monotonic time that moves only when the fetcher sleeps, and the time of every request."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    requests: list[tuple[float, str]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def on_request(self, request: httpx.Request) -> None:
        self.requests.append((self.now, request.url.path))


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[FakeSite, str]]:
    site = FakeSite()
    with serve(site.app()) as url:
        yield site, url


@pytest.fixture
def site(running: tuple[FakeSite, str]) -> FakeSite:
    fake, _ = running
    fake.reset()  # one socket for the module, a fresh site per test
    return fake


@pytest.fixture
def base_url(running: tuple[FakeSite, str]) -> str:
    return running[1]


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: loading the CA bundle costs ~40 ms


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def http(tls: ssl.SSLContext, clock: FakeTime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        timeout=5, verify=tls, event_hooks={"request": [clock.on_request]}
    ) as client:
        yield client


def fetcher(
    http: httpx.AsyncClient,
    clock: FakeTime,
    *,
    min_interval: float = 0.5,
    validators: Validators | None = None,
) -> PoliteFetcher:
    return PoliteFetcher(
        http,
        user_agent=USER_AGENT,
        min_interval=min_interval,
        validators=validators,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )


def source(base_url: str, site: str = "fsbo", **options: Any) -> SourceConfig:
    index_path = "/listings" if site == "fsbo" else CLASSIFIEDS
    return SourceConfig(
        slug=f"test-{site}",
        name=f"Test {site} site",
        type="listing_page",
        market="las-vegas",
        options={"site": site, "base_url": base_url, "index_path": index_path, **options},
    )


def fsbo(base_url: str, fetch: PoliteFetcher, **options: Any) -> FsboSiteConnector:
    return FsboSiteConnector(source(base_url, **options), fetch)


async def crawl(connector: FsboSiteConnector | ClassifiedsConnector) -> list[RawRecord]:
    return [record async for record in connector.fetch(None)]


# --- FSBO crawl ------------------------------------------------------------------------------


async def test_fsbo_crawl_follows_pagination_and_yields_each_allowed_listing_once(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    records = await crawl(fsbo(base_url, fetcher(http, clock)))

    assert [r.source_key for r in records] == [DESERT_INN, BENT_WILLOW, CAMELBACK, BELL_RD]
    # The featured repeat on page 2 (?ref=featured#photos) is the same listing, fetched once.
    assert site.targets().count(DESERT_INN) == 1
    assert "/listings?page=2" in site.targets()
    # robots.txt forbids /listings/preview/: read once, first, and obeyed.
    assert site.targets()[0] == "/robots.txt"
    assert site.targets().count("/robots.txt") == 1
    assert PREVIEW not in site.targets()
    assert {hit.user_agent for hit in site.hits} == {USER_AGENT}
    first = records[0]
    assert first.payload["url"] == base_url + DESERT_INN
    assert first.payload["html"] == site.pages[DESERT_INN]
    assert first.source_updated_at is not None
    assert first.source_updated_at.isoformat() == "2026-01-12T17:00:00+00:00"


async def test_max_pages_stops_the_index_walk(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    records = await crawl(fsbo(base_url, fetcher(http, clock), max_pages=1))

    assert [r.source_key for r in records] == [DESERT_INN, BENT_WILLOW, CAMELBACK]
    assert "/listings?page=2" not in site.targets()


async def test_second_crawl_with_stored_validators_yields_only_changed_pages(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    stored: Validators = {}
    await crawl(fsbo(base_url, fetcher(http, clock, validators=stored)))
    stored = json.loads(json.dumps(stored))  # as a caller would persist them between runs

    site.hits.clear()
    unchanged = await crawl(fsbo(base_url, fetcher(http, clock, validators=stored)))

    assert unchanged == []
    detail_hits = [hit for hit in site.hits if hit.target in DETAILS]
    assert len(detail_hits) == 4
    assert all(hit.status == 304 and hit.if_none_match for hit in detail_hits)

    site.pages[CAMELBACK] = site.pages[CAMELBACK].replace("$625,000", "$599,000")
    changed = await crawl(fsbo(base_url, fetcher(http, clock, validators=stored)))

    assert [r.source_key for r in changed] == [CAMELBACK]
    assert "$599,000" in changed[0].payload["html"]


@pytest.mark.parametrize(
    ("min_interval", "spacing"),
    [(0.5, 2.0), (5.0, 5.0)],
    ids=["robots-crawl-delay-is-longer", "min-interval-is-longer"],
)
async def test_requests_to_one_host_are_spaced(
    site: FakeSite,
    base_url: str,
    http: httpx.AsyncClient,
    clock: FakeTime,
    min_interval: float,
    spacing: float,
) -> None:
    site.fail_once.add(BENT_WILLOW)  # a retry is a request too and keeps the pace

    await crawl(fsbo(base_url, fetcher(http, clock, min_interval=min_interval)))

    times = [when for when, _ in clock.requests]
    assert len(times) == len(site.hits) == 8
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= spacing - 1e-9
    assert clock.sleeps  # waited on the fake clock, not the real one


async def test_a_503_is_retried_and_the_page_still_arrives(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    site.fail_once.add(BENT_WILLOW)

    records = await crawl(fsbo(base_url, fetcher(http, clock)))

    assert BENT_WILLOW in [r.source_key for r in records]
    assert [hit.status for hit in site.hits if hit.target == BENT_WILLOW] == [503, 200]


async def test_a_detail_page_that_keeps_failing_is_skipped_and_the_crawl_goes_on(
    site: FakeSite,
    base_url: str,
    http: httpx.AsyncClient,
    clock: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site.broken.add(CAMELBACK)  # this one listing's page is broken at the site

    records = await crawl(fsbo(base_url, fetcher(http, clock)))

    assert [r.source_key for r in records] == [DESERT_INN, BENT_WILLOW, BELL_RD]
    assert [hit.status for hit in site.hits if hit.target == CAMELBACK] == [500] * 5
    [failed] = logged(caplog, "listing_page_failed")
    assert failed["url"] == base_url + CAMELBACK


async def test_detail_pages_failing_in_a_row_stop_the_crawl(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    down = [f"/listings/down-{n}" for n in range(MAX_FAILED_IN_A_ROW)]
    links = "".join(f'<a class="result-link" href="{path}">x</a>' for path in down)
    site.pages["/listings"] = site.pages["/listings"].replace("</body>", links + "</body>")
    site.broken.update(down)  # the site falls over after the first page's listings

    with pytest.raises(SourceUnavailable, match=f"{MAX_FAILED_IN_A_ROW} listing pages in a row"):
        await crawl(fsbo(base_url, fetcher(http, clock)))
    assert "/listings?page=2" not in site.targets()


async def test_a_redirect_to_another_host_is_not_followed(
    site: FakeSite,
    base_url: str,
    http: httpx.AsyncClient,
    clock: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    internal_hits: list[str] = []

    async def internal(request: Request) -> Response:
        internal_hits.append(request.url.path)
        return PlainTextResponse("<html>internal admin console: db password hunter2</html>")

    site.robots_status = 404
    # A hostile (or hacked) site sends one listing to a host of our own network: another
    # origin (here another loopback port).
    with serve(Starlette(routes=[Route("/{path:path}", internal)])) as internal_url:
        site.redirects[BENT_WILLOW] = f"{internal_url}/admin/secrets"
        records = await crawl(fsbo(base_url, fetcher(http, clock)))

    assert internal_hits == []
    assert [r.source_key for r in records] == [DESERT_INN, CAMELBACK, BELL_RD]
    assert not any("hunter2" in r.payload["html"] for r in records)
    [refused] = logged(caplog, "fetch_redirect_off_site")
    assert refused["location"] == f"{internal_url}/admin/secrets"


@pytest.mark.parametrize("status", [401, 403])
async def test_robots_txt_locked_away_means_nothing_is_fetched(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime, status: int
) -> None:
    site.robots_status = status

    assert await crawl(fsbo(base_url, fetcher(http, clock))) == []
    assert site.targets() == ["/robots.txt"]


async def test_missing_robots_txt_allows_everything(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    site.robots_status = 404
    site.pages[PREVIEW] = page("fsbo_detail_3.html")

    records = await crawl(fsbo(base_url, fetcher(http, clock)))

    assert PREVIEW in [r.source_key for r in records]
    gaps = [b[0] - a[0] for a, b in zip(clock.requests, clock.requests[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-9  # no Crawl-delay: our own interval


async def test_robots_txt_server_errors_stop_the_crawl(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    site.robots_status = 503

    with pytest.raises(SourceUnavailable):
        await crawl(fsbo(base_url, fetcher(http, clock)))
    assert set(site.targets()) == {"/robots.txt"}


# --- the fetcher on its own ------------------------------------------------------------------


async def test_fetcher_refuses_disallowed_urls_and_redirects_into_them(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    site.redirects["/go/central"] = PREVIEW
    polite = fetcher(http, clock)

    assert not await polite.allowed(base_url + PREVIEW)
    with pytest.raises(Disallowed):
        await polite.fetch(base_url + PREVIEW)
    with pytest.raises(Disallowed) as raised:
        await polite.fetch(base_url + "/go/central")
    assert raised.value.url == base_url + PREVIEW
    assert PREVIEW not in site.targets()


async def test_fetcher_follows_redirects_and_answers_304_without_a_body(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    site.redirects["/l/4821"] = DESERT_INN
    polite = fetcher(http, clock)

    first = await polite.fetch(base_url + "/l/4821")
    again = await polite.fetch(base_url + DESERT_INN)

    assert (first.url, first.status, first.not_modified) == (base_url + DESERT_INN, 200, False)
    assert first.text == site.pages[DESERT_INN]
    assert first.etag
    assert first.last_modified == LAST_MODIFIED
    assert (again.status, again.not_modified, again.text) == (304, True, None)
    assert (again.etag, again.last_modified) == (first.etag, LAST_MODIFIED)
    assert polite.validators[base_url + DESERT_INN] == {
        "etag": first.etag,
        "last_modified": LAST_MODIFIED,
    }


# --- reading FSBO pages ----------------------------------------------------------------------


@pytest.fixture
async def offline(tls: ssl.SSLContext) -> AsyncIterator[PoliteFetcher]:
    """A fetcher for connectors that only parse."""
    async with httpx.AsyncClient(verify=tls) as client:
        yield PoliteFetcher(client, user_agent=USER_AGENT)


def record(name: str, key: str, url: str) -> RawRecord:
    return RawRecord(source_key=key, payload={"url": url, "html": page(name)})


FSBO_EXPECTED: dict[str, dict[str, Any]] = {
    "fsbo_detail_1.html": {
        "full_name": "Dana Whitfield",
        "phone": "(702) 555-0182",
        "email": "dana.whitfield@example.com",
        "street": "4821 W Desert Inn Rd",
        "city": "Las Vegas",
        "state": "NV",
        "postal_code": "89102",
        "list_price": "$450,000",
        "property_type": "Single Family",
        "beds": "4",
        "baths": "2.5",
        "living_area_sqft": "2,140 sq ft",
        "lot_size_sqft": "6,534 sq ft",
        "year_built": "1987",
        "listing_status": "Active",
        "latitude": "36.1291",
        "longitude": "-115.2070",
    },
    "fsbo_detail_2.html": {
        "full_name": "Marcus & Lena Ortiz",
        "phone": "702-555-0139",
        "email": "ortiz.family@example.com",
        "street": "10392 Bent Willow Ave",
        "city": "Las Vegas",
        "postal_code": "89139",
        "list_price": "$389K",
        "beds": "3",
        "baths": "2",
        "living_area_sqft": "1,812 sq ft",
        "year_built": "2006",
    },
    "fsbo_detail_3.html": {
        "full_name": "Ruth Feldman",
        "phone": "(602) 555-0147",
        "email": "ruth.feldman@example.org",
        "street": "3925 E Camelback Rd",
        "city": "Phoenix",
        "state": "AZ",
        "postal_code": "85018",
        "list_price": "$625,000",
        "lot_size_sqft": "0.21 acres",
        "year_built": "1958",
    },
    "fsbo_detail_4.html": {
        "full_name": "Kevin Tran",
        "phone": "(602) 555-0163",
        "email": None,
        "street": "2720 E Bell Rd Unit 1042",
        "city": "Phoenix",
        "state": "AZ",
        "postal_code": "85032",
        "list_price": "$279,900",
        "property_type": "Condo",
        "beds": "2",
        "lot_size_sqft": None,
        "listing_status": "Pending",
        "latitude": None,
    },
}


@pytest.mark.parametrize("name", sorted(FSBO_EXPECTED))
async def test_fsbo_detail_pages_read_as_written(offline: PoliteFetcher, name: str) -> None:
    connector = fsbo("https://ownerdirect.example", offline)

    candidate = connector.parse(record(name, "/listings/x", "https://ownerdirect.example/x"))

    assert candidate.kind == "fsbo"
    assert candidate.market == "las-vegas"
    assert {k: getattr(candidate, k) for k in FSBO_EXPECTED[name]} == FSBO_EXPECTED[name]
    assert candidate.description


async def test_fsbo_description_and_other_facts(offline: PoliteFetcher) -> None:
    connector = fsbo("https://ownerdirect.example", offline)

    candidate = connector.parse(record("fsbo_detail_1.html", DESERT_INN, "https://x" + DESERT_INN))

    assert candidate.description == (
        "Single-story home on a quiet cul-de-sac, ten minutes from the Strip. New roof in 2022,"
        " quartz counters and LVP flooring throughout.\n\n"
        "Owner relocating for work and motivated to sell. No agents please."
    )
    assert candidate.extra["facts"] == {"Garage": "2-car attached", "HOA": "None"}
    assert candidate.extra["listing_url"] == "https://x" + DESERT_INN


async def test_fsbo_page_with_a_new_layout_is_quarantined_not_crashed(
    offline: PoliteFetcher,
) -> None:
    connector = fsbo("https://ownerdirect.example", offline)

    with pytest.raises(ParseError) as raised:
        connector.parse(record("fsbo_detail_changed_layout.html", DESERT_INN, "https://x/"))

    assert raised.value.code == "layout_changed"
    assert ".listing-price" in raised.value.message
    assert ".listing-address" in raised.value.message


@pytest.mark.parametrize(
    "payload",
    [{"url": "https://x/", "html": None}, {"url": "https://x/", "html": b"<html>"}, {"html": "x"}],
)
@pytest.mark.parametrize("site_key", ["fsbo", "classifieds"])
async def test_payload_without_html_text_is_bad_payload(
    offline: PoliteFetcher, payload: dict[str, Any], site_key: str
) -> None:
    connector = LISTING_SITES[site_key](source("https://x", site_key), offline)

    with pytest.raises(ParseError) as raised:
        connector.parse(RawRecord(source_key="k", payload=payload))

    assert raised.value.code == "bad_payload"


# --- classifieds -----------------------------------------------------------------------------


async def test_classifieds_page_yields_one_record_per_ad_with_owner_ads_as_fsbo(
    site: FakeSite, base_url: str, http: httpx.AsyncClient, clock: FakeTime
) -> None:
    connector = ClassifiedsConnector(source(base_url, "classifieds"), fetcher(http, clock))

    records = await crawl(connector)
    candidates = {r.source_key: connector.parse(r) for r in records}

    assert list(candidates) == ["ad-558812", "ad-558790", "ad-558777", "ad-558741"]
    assert {key: c.kind for key, c in candidates.items()} == {
        "ad-558812": "fsbo",
        "ad-558790": "fsbo",
        "ad-558777": "seller",  # posted by an agent
        "ad-558741": "fsbo",
    }
    assert all(r.payload["url"] == base_url + CLASSIFIEDS for r in records)
    assert all(r.payload["html"].startswith("<article") for r in records)
    assert "Sponsored" not in "".join(r.payload["html"] for r in records)
    assert records[0].source_updated_at is not None
    assert records[0].source_updated_at.isoformat() == "2026-01-12T17:14:00+00:00"

    # Nothing changed on the page: the next crawl costs a 304 and yields nothing.
    assert await crawl(connector) == []
    assert site.hits[-1].status == 304


async def test_classifieds_ads_read_as_written(offline: PoliteFetcher) -> None:
    connector = ClassifiedsConnector(source("https://swap.example", "classifieds"), offline)
    tree_html = page("classifieds_index.html")
    ads = {
        key: connector.parse(RawRecord(key, {"url": "https://swap.example/re", "html": html}))
        for key, html in _ads(tree_html).items()
    }

    owner, no_email, agent = ads["ad-558812"], ads["ad-558741"], ads["ad-558777"]
    assert owner == Candidate(
        kind="fsbo",
        full_name="Maria Gonzalez",
        phone="(702) 555-0148",
        email="maria.gonzalez@example.com",
        street="7421 Silver Leaf Way",
        city="Las Vegas",
        state="NV",
        postal_code="89128",
        property_type="Single Family",
        beds="3",
        baths="2",
        living_area_sqft="1,640",
        lot_size_sqft="0.15 acres",
        year_built="1998",
        list_price="$385K",
        description=(
            "Well kept home near Summerlin. Owner financing possible with 10% down. Tile roof,"
            " RV parking. Call or text, no agents."
        ),
        market="las-vegas",
        extra={
            "listing_url": "https://swap.example/ad/558812",
            "title": "3BR/2BA Summerlin-area home, owner will carry",
            "posted_by": "owner",
        },
    )
    assert (no_email.full_name, no_email.email, no_email.phone) == (None, None, "623-555-0174")
    assert (no_email.list_price, no_email.living_area_sqft) == ("$240K obo", None)
    assert (agent.kind, agent.extra["posted_by"], agent.postal_code) == ("seller", "agent", "89052")


async def test_classifieds_ad_with_a_new_layout_is_quarantined(offline: PoliteFetcher) -> None:
    connector = ClassifiedsConnector(source("https://swap.example", "classifieds"), offline)
    html = _ads(page("classifieds_index.html"))["ad-558790"]
    html = html.replace('class="ad-price"', 'class="price-tag"')

    with pytest.raises(ParseError) as raised:
        connector.parse(RawRecord("ad-558790", {"url": "https://swap.example/", "html": html}))

    assert raised.value.code == "layout_changed"
    assert ".ad-price" in raised.value.message
    assert ".ad-location" not in raised.value.message


def _ads(html: str) -> dict[str, str]:
    """Each ad's outer HTML by id, cut from the saved page the way the connector cuts it."""
    return {
        node.attributes["id"] or "": node.html or ""
        for node in LexborHTMLParser(html).css("article.ad")
    }
