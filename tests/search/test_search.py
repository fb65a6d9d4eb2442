"""Marketplace search on both dialects with the same fixtures: every expectation below is
computed in Python, so SQLite and PostgreSQL+PostGIS are each held to the same answer."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.dialect import bounding_box, search_text
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.leads.repository import LeadRepository
from aiqleads.runtime import Runtime
from aiqleads.search import repository
from aiqleads.search.repository import METERS_PER_MILE
from aiqleads.search.schemas import SearchRequest
from aiqleads.search.service import markets_in_reach
from tests.conftest import Account, Api
from tests.search.factories import CENTER, add_leads, lead_row, miles_between


def encode_cursor_raw(sort: str, value: object) -> str:
    """A cursor encoded as the API encodes its own, around any value."""
    raw = orjson.dumps([sort, value, str(uuid.uuid4())])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


SEARCH = "/api/v1/leads/search"
STEP = 0.01  # one step of the public grid, in degrees


async def search(api: Api, agent: Account, **params: Any) -> dict[str, Any]:
    response = await api.client.get(SEARCH, params=params, headers=agent.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def search_shape(api: Api, agent: Account, **body: Any) -> dict[str, Any]:
    response = await api.client.post(SEARCH, json=body, headers=agent.auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


@pytest.fixture
async def agent(api: Api) -> Account:
    return await api.signup("agent@realty.example.com")


@pytest.fixture(params=["walk", "short walk"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches that walk a sort index read up to WALK_BUDGET entries, then ask the planner,
    and a distance sort tries small disks around the point before the whole radius. With a
    budget of 2 and disks of 1 m to 1.5 km, most pages here come from the later paths; every
    path must give the same answers."""
    if request.param == "short walk":
        monkeypatch.setattr(repository, "WALK_BUDGET", 2)
        monkeypatch.setattr(repository, "DISTANCE_RINGS_M", (1.0, 500.0, 1_500.0))


async def test_radius_includes_a_lead_just_inside_and_not_one_just_outside(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, walk: None
) -> None:
    now = clock.now()
    north = lead_row(now, latitude=CENTER[0] + 14 * STEP, longitude=CENTER[1])
    east = lead_row(now, latitude=CENTER[0], longitude=CENTER[1] + 18 * STEP)
    await add_leads(runtime, north, east)
    d_north = miles_between(CENTER, (north.public_latitude, north.public_longitude))
    d_east = miles_between(CENTER, (east.public_latitude, east.public_longitude))
    assert d_north < d_east

    lat, lon = CENTER
    # About a metre either side of the northern lead.
    inside = await search(api, agent, lat=lat, lon=lon, radius_mi=d_north + 0.0007)
    outside = await search(api, agent, lat=lat, lon=lon, radius_mi=d_north - 0.0007)
    both = await search(api, agent, lat=lat, lon=lon, radius_mi=d_east + 0.0007, sort="distance")

    assert ids(inside) == [str(north.id)]
    assert ids(outside) == []
    assert ids(both) == [str(north.id), str(east.id)]
    assert [i["distance_mi"] for i in both["items"]] == [round(d_north, 1), round(d_east, 1)]


async def test_bounding_box_and_polygon(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, walk: None
) -> None:
    now = clock.now()
    lat, lon = CENTER
    inside = lead_row(now, latitude=lat + 0.02, longitude=lon + 0.02)
    # Inside the triangle's bounding box but outside the triangle.
    corner = lead_row(now, latitude=lat + 0.09, longitude=lon + 0.01)
    on_edge = lead_row(now, latitude=lat, longitude=lon + 0.05)
    far = lead_row(now, latitude=lat + 0.5, longitude=lon + 0.5)
    await add_leads(runtime, inside, corner, on_edge, far)
    triangle = {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + 0.1, lat], [lon + 0.1, lat + 0.1], [lon, lat]]],
    }

    boxed = await search(api, agent, bbox=f"{lon - 0.01},{lat - 0.01},{lon + 0.11},{lat + 0.11}")
    shaped = await search_shape(api, agent, polygon=triangle)
    nowhere = await search_shape(
        api,
        agent,
        polygon={
            "type": "Polygon",
            "coordinates": [[[-100, 40], [-99.9, 40], [-99.9, 40.1], [-100, 40]]],
        },
    )

    assert set(ids(boxed)) == {str(inside.id), str(corner.id), str(on_edge.id)}
    assert set(ids(shaped)) == {str(inside.id), str(on_edge.id)}
    assert nowhere == {"items": [], "next_cursor": None, "facets": None}


async def test_every_filter_narrows_to_the_matching_leads(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, walk: None
) -> None:
    now = clock.now()
    base = lead_row(now)
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "kind": ({"kind": "buyer"}, {"kind": "buyer"}),
        "property_type": ({"property_type": "condo"}, {"property_type": "condo"}),
        "price": ({"list_price_cents": 95_000_000}, {"min_price_cents": 90_000_000}),
        "cheap": ({"list_price_cents": 15_000_000}, {"max_price_cents": 20_000_000}),
        "beds": ({"beds": 6}, {"min_beds": 5}),
        "baths": ({"baths": 4.5}, {"min_baths": 4}),
        "area": ({"living_area_sqft": 5200}, {"min_living_area_sqft": 5000}),
        "small": ({"living_area_sqft": 600}, {"max_living_area_sqft": 700}),
        "new_build": ({"year_built": 2024}, {"min_year_built": 2020}),
        "old": ({"year_built": 1925}, {"max_year_built": 1950}),
        "dom": ({"days_on_market": 400}, {"max_days_on_market": 100}),
        "quality": ({"quality_score": 97}, {"min_quality": 95}),
        "fraud": ({"fraud_score": 0.01}, {"max_fraud": 0.02}),
        "shared": ({"exclusivity": Exclusivity.SHARED, "max_sales": 3}, {"exclusivity": "shared"}),
        "phoenix": (
            {"market": "phoenix", "latitude": 33.45, "longitude": -112.07},
            {"market": "phoenix"},
        ),
        "reso": ({"source": "lv-mls-reso"}, {"source_type": "reso"}),
    }
    special = {name: lead_row(now, **values) for name, (values, _) in cases.items()}
    stale = lead_row(now - timedelta(days=40), created_at=now - timedelta(days=40))
    hidden = [
        lead_row(now, status=LeadStatus.QUARANTINED, kind="buyer"),
        lead_row(now, status=LeadStatus.SOLD, kind="buyer"),
    ]
    await add_leads(runtime, base, stale, *special.values(), *hidden)

    for name, (_, params) in cases.items():
        found = set(ids(await search(api, agent, limit=100, **params)))
        if name == "dom":  # every lead but the one 400 days on market
            assert str(special[name].id) not in found
            assert len(found) == len(special) + 1
            continue
        assert found == {str(special[name].id)}, name
    fresh = set(ids(await search(api, agent, fresh_within_days=30, limit=100)))
    assert str(stale.id) not in fresh
    assert len(fresh) == len(special) + 1
    everything = ids(await search(api, agent, limit=100))
    assert not {str(h.id) for h in hidden} & set(everything)


async def test_sorts_put_leads_in_the_promised_order(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, walk: None
) -> None:
    now = clock.now()
    lat, lon = CENTER
    leads = [
        lead_row(
            now - timedelta(hours=i),
            created_at=now - timedelta(hours=i),
            list_price_cents=price,
            quality_score=quality,
            latitude=lat + i * STEP,
            longitude=lon,
        )
        for i, (price, quality) in enumerate(
            [(30_000_000, 50), (None, 90), (55_000_000, 70), (12_000_000, 60)]
        )
    ]
    await add_leads(runtime, *leads)
    by = {
        "price": sorted(leads, key=lambda x: (x.list_price_cents is None, x.list_price_cents or 0)),
        "price_desc": sorted(
            leads, key=lambda x: (x.list_price_cents is None, -(x.list_price_cents or 0))
        ),
        "newest": sorted(leads, key=lambda x: x.created_at, reverse=True),
        "quality": sorted(leads, key=lambda x: x.quality_score, reverse=True),
        "distance": sorted(
            leads, key=lambda x: miles_between(CENTER, (x.public_latitude, x.public_longitude))
        ),
    }
    for sort, expected in by.items():
        body = await search(api, agent, sort=sort, lat=lat, lon=lon)
        assert ids(body) == [str(x.id) for x in expected], sort


async def test_words_find_descriptions_streets_and_cities_ranked_by_relevance(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    pool = lead_row(now, description="Remodeled kitchen and a heated pool")
    pools = lead_row(now, description="Two pools, pool house, pool table: a pool lover's home")
    street = lead_row(now, street_name="POOL VIEW", description="Corner lot")
    henderson = lead_row(now, city="HENDERSON", description="Quiet street")
    await add_leads(runtime, pool, pools, street, henderson)

    found = await search(api, agent, q="pools")
    relevant = await search(api, agent, q="pool", sort="relevance")
    city = await search(api, agent, q="Henderson")
    both = await search(api, agent, q="heated pool")
    none = await search(api, agent, q="helicopter")
    punctuation = await search(api, agent, q='"pool" OR -(kitchen*')

    assert set(ids(found)) == {str(pool.id), str(pools.id), str(street.id)}  # stemmed
    assert ids(relevant)[0] == str(pools.id)  # four mentions beat one
    assert ids(city) == [str(henderson.id)]
    assert ids(both) == [str(pool.id)]
    assert ids(none) == []
    assert ids(punctuation) == [str(pool.id)]  # words only; operators are not syntax


async def test_words_within_a_market_find_only_that_markets_leads_on_sale(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    """Words and a market together (SQLite reads them through the market's index)."""
    now = clock.now()
    vegas = lead_row(now, description="A heated pool")
    sold = lead_row(now, description="A pool too", status=LeadStatus.SOLD)
    phoenix = lead_row(now, description="Desert pool", market="phoenix", city="PHOENIX", state="AZ")
    await add_leads(runtime, vegas, sold, phoenix)

    in_vegas = await search(api, agent, q="pool", market="las-vegas")
    in_phoenix = await search(api, agent, q="pool", market="phoenix", facets="true")

    assert ids(in_vegas) == [str(vegas.id)]
    assert ids(in_phoenix) == [str(phoenix.id)]
    assert in_phoenix["facets"]["market"] == [{"value": "phoenix", "count": 1}]


async def test_words_follow_leads_rewritten_with_the_same_or_new_words(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    """Ingestion rewrites a merged lead whole (`update_many`); its words stay searchable,
    and words that change are found as they are now, not as they were."""
    now = clock.now()
    same = lead_row(now, description="A heated pool")
    changed = lead_row(now, description="A heated pool")
    await add_leads(runtime, same, changed)
    new_words = search_text(changed.street_name, changed.city, "A sunny patio")
    async with runtime.transaction() as session:
        await LeadRepository(session).update_many(
            [
                {"id": same.id, "search_text": same.search_text, "quality_score": 90},
                {"id": changed.id, "search_text": new_words, "quality_score": 90},
            ]
        )

    assert ids(await search(api, agent, q="pool")) == [str(same.id)]
    assert ids(await search(api, agent, q="patio")) == [str(changed.id)]


async def test_cursor_pages_cover_every_lead_once_while_new_leads_arrive(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, walk: None
) -> None:
    now = clock.now()
    prices = [20_000_000, 20_000_000, 35_000_000, None, 50_000_000, 20_000_000, 80_000_000]
    original = [
        lead_row(
            now - timedelta(minutes=i), created_at=now - timedelta(minutes=i), list_price_cents=p
        )
        for i, p in enumerate(prices)
    ]
    await add_leads(runtime, *original)
    # Every lead's description mentions a pool; relevance must not shift as leads arrive.
    for sort in ("price", "newest", "quality", "price_desc", "relevance"):
        seen: list[str] = []
        cursor = None
        for page in range(10):
            params: dict[str, Any] = {"sort": sort, "limit": 2}
            if sort == "relevance":
                params["q"] = "pool"
            if cursor:
                params["cursor"] = cursor
            body = await search(api, agent, **params)
            seen += ids(body)
            cursor = body["next_cursor"]
            if page == 1:  # newcomers arrive mid-way, some sorting before, some after
                await add_leads(
                    runtime,
                    lead_row(now + timedelta(minutes=1), list_price_cents=10_000_000),
                    lead_row(now + timedelta(minutes=1), list_price_cents=90_000_000),
                )
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), sort
        assert {str(x.id) for x in original} <= set(seen), sort


async def test_facets_count_matches_by_kind_type_price_band_and_market(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    await add_leads(
        runtime,
        lead_row(now, kind="buyer", list_price_cents=15_000_000),
        lead_row(now, kind="seller", property_type="condo", list_price_cents=45_000_000),
        lead_row(now, kind="seller", list_price_cents=None),
        lead_row(now, market="phoenix", latitude=33.45, longitude=-112.07),
    )

    body = await search(api, agent, facets="true", limit=1)
    local = await search(api, agent, facets="true", market="las-vegas")

    assert body["facets"] == {
        "kind": [{"value": "seller", "count": 3}, {"value": "buyer", "count": 1}],
        "property_type": [
            {"value": "single_family", "count": 3},
            {"value": "condo", "count": 1},
        ],
        "price_band": [
            {"value": "400k_600k", "count": 2},
            {"value": "under_200k", "count": 1},
            {"value": "unknown", "count": 1},
        ],
        "market": [{"value": "las-vegas", "count": 3}, {"value": "phoenix", "count": 1}],
    }
    assert len(body["items"]) == 1  # facets count every match, not the page
    assert local["facets"]["market"] == [{"value": "las-vegas", "count": 3}]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "distance"}, "validation_error"),
        ({"radius_mi": 5}, "validation_error"),
        ({"lat": 36.1}, "validation_error"),
        ({"radius_mi": 500, "lat": 36.1, "lon": -115.1}, "validation_error"),
        ({"bbox": "-115,36,-116,37"}, "validation_error"),
        ({"bbox": "a,b,c,d"}, "validation_error"),
        ({"kind": "landlord"}, "validation_error"),
        ({"min_price_cents": 5, "max_price_cents": 1}, "validation_error"),
        ({"limit": 101}, "validation_error"),
        ({"colour": "red"}, "validation_error"),
        ({"market": "atlantis"}, "unknown_market"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"min_price_cents": 2**63}, "validation_error"),  # beyond the columns
        ({"max_days_on_market": 10**20}, "validation_error"),
        ({"max_living_area_sqft": 2**31}, "validation_error"),
        ({"sort": "quality", "cursor": encode_cursor_raw("quality", 1.5)}, "invalid_cursor"),
        ({"sort": "quality", "cursor": encode_cursor_raw("quality", 40_000)}, "invalid_cursor"),
        ({"sort": "price", "cursor": encode_cursor_raw("price", 10.5)}, "invalid_cursor"),
        (  # well formed, but before the first instant in UTC
            {"sort": "newest", "cursor": encode_cursor_raw("newest", "0001-01-01T00:00+14:00")},
            "invalid_cursor",
        ),
    ],
)
async def test_bad_searches_get_a_clear_problem(
    api: Api, agent: Account, params: dict[str, Any], code: str
) -> None:
    response = await api.client.get(SEARCH, params=params, headers=agent.auth)

    assert response.status_code in {400, 422}
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_a_cursor_from_another_sort_and_a_bad_polygon_are_refused(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    await add_leads(runtime, *(lead_row(now) for _ in range(3)))
    cursor = (await search(api, agent, sort="price", limit=1))["next_cursor"]
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[-115, 36], [-114, 37], [-114, 36], [-115, 37], [-115, 36]]],
    }

    mixed = await api.client.get(
        SEARCH, params={"sort": "newest", "cursor": cursor}, headers=agent.auth
    )
    crossed = await api.client.post(SEARCH, json={"polygon": bowtie}, headers=agent.auth)
    open_ring = await api.client.post(
        SEARCH,
        json={
            "polygon": {"type": "Polygon", "coordinates": [[[-115, 36], [-114, 37], [-114, 36]]]}
        },
        headers=agent.auth,
    )

    assert mixed.json()["code"] == "invalid_cursor"
    assert crossed.status_code == 422
    assert "crosses itself" in crossed.text
    assert open_ring.status_code == 422


async def test_search_needs_a_signed_in_agent(client: httpx.AsyncClient) -> None:
    response = await client.get(SEARCH)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_searches_and_views_are_recorded_as_demand_after_the_request(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    from sqlalchemy import select

    from aiqleads.demand.models import DemandEvent

    lead: Lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await search(api, agent, market="las-vegas", kind="seller")
    await api.client.get(f"/api/v1/leads/{lead.id}", headers=agent.auth)

    async with runtime.transaction(write=False) as session:
        before = list(await session.scalars(select(DemandEvent)))
    written = await runtime.demand.flush()
    async with runtime.transaction(write=False) as session:
        events = list(await session.scalars(select(DemandEvent).order_by(DemandEvent.kind)))

    assert before == []  # nothing written inside the requests
    assert written == 2
    assert [(e.kind.value, e.market, e.lead_kind) for e in events] == [
        ("search", "las-vegas", "seller"),
        ("view", "las-vegas", "seller"),
    ]
    assert events[0].detail["filters"] == {"market": "las-vegas", "kind": ["seller"]}
    assert events[1].lead_id == lead.id


async def test_one_odd_demand_event_does_not_stop_the_others_being_recorded(
    api: Api, agent: Account, runtime: Runtime
) -> None:
    """A value the column cannot hold is refused at the door (422) or left out of the event;
    a row the database refuses anyway is dropped alone, not retried with its batch forever."""
    from sqlalchemy import select

    from aiqleads.demand.models import DemandEvent, DemandKind

    odd = await api.client.get(
        "/api/v1/leads/search",
        params={"market": "las-vegas", "property_type": "x" * 33},
        headers=agent.auth,
    )
    assert odd.status_code == 422
    runtime.demand.record(
        DemandKind.SEARCH, user_id=None, market="las-vegas", property_type="y" * 30
    )
    runtime.demand.record(DemandKind.SEARCH, user_id=None, market="m" * 64)
    assert await runtime.demand.flush() == 2
    # One the database refuses among good ones (here: the same id as the first).
    for market in ("dallas", "phoenix", "austin"):
        runtime.demand.record(DemandKind.SEARCH, user_id=None, market=market)
    buffered = runtime.demand._buffer
    buffered[1]["id"] = buffered[0]["id"]
    assert await runtime.demand.flush() == 2
    assert await runtime.demand.flush() == 0  # not put back
    async with runtime.transaction(write=False) as session:
        markets = list(await session.scalars(select(DemandEvent.market)))
    assert sorted(m or "" for m in markets) == ["austin", "dallas", "las-vegas", "m" * 64]


async def test_both_engines_read_the_same_words_in_accents_numbers_and_addresses(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    cafe = lead_row(now, description="Steps from a café, 2.5 baths, fire pit, move-in ready")
    plain = lead_row(now, description="Quiet street")
    await add_leads(runtime, cafe, plain)

    for q in ("cafe", "café", "2.5", "fire", "move in", "MOVE-IN ready"):
        assert ids(await search(api, agent, q=q)) == [str(cafe.id)], q
    assert ids(await search(api, agent, q="the of and")) == []  # only stop words: nothing


async def test_distance_pages_leave_out_leads_without_a_point(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    located = [lead_row(now, latitude=CENTER[0] + i * STEP, longitude=CENTER[1]) for i in range(3)]
    await add_leads(runtime, *located, lead_row(now, latitude=None, longitude=None))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "lat": CENTER[0],
            "lon": CENTER[1],
            "sort": "distance",
            "limit": 2,
        }
        body = await search(api, agent, **params, **({"cursor": cursor} if cursor else {}))
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == [str(x.id) for x in located]


async def test_a_polygon_search_does_not_wait_for_the_writer(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock
) -> None:
    """POST is only a search with a body: it must not queue behind SQLite's single writer."""
    await add_leads(runtime, lead_row(clock.now()))
    square = {
        "type": "Polygon",
        "coordinates": [
            [[-115.3, 36.0], [-115.0, 36.0], [-115.0, 36.3], [-115.3, 36.3], [-115.3, 36.0]]
        ],
    }
    async with runtime.transaction():  # a long ingestion batch holds the write lock
        response = await asyncio.wait_for(
            api.client.post(SEARCH, json={"polygon": square}, headers=agent.auth), timeout=5
        )

    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


PHOENIX = (33.4484, -112.0740)


def test_a_search_reaches_the_markets_its_place_overlaps(runtime: Runtime) -> None:
    catalog = runtime.markets
    every = sorted(m.slug for m in catalog.all())

    def reach(**params: Any) -> list[str]:
        return markets_in_reach(catalog, SearchRequest.model_validate(params))

    assert reach(lat=CENTER[0], lon=CENTER[1], radius_mi=10) == ["las-vegas"]
    assert reach(lat=CENTER[0], lon=CENTER[1], radius_mi=10, market="phoenix") == ["phoenix"]
    assert reach() == every
    assert reach(lat=CENTER[0], lon=CENTER[1]) == every  # a point without a radius: anywhere
    assert reach(bbox="-125,25,-105,40") == ["las-vegas", "phoenix"]
    assert reach(lat=CENTER[0], lon=CENTER[1], radius_mi=10, bbox="-113,33,-111,34") == []
    assert reach(lat=45.0, lon=-100.0, radius_mi=10) == []
    # A lead just inside Las Vegas's bbox is shown at its public point, up to half a grid
    # step further out: a circle that stops just short of the bbox still reaches the market.
    west_edge = -115.45
    radius_m = 10 * METERS_PER_MILE
    east_of_circle = bounding_box(36.1, west_edge, radius_m)[3] - west_edge
    for short_by, reached in ((0.004, ["las-vegas"]), (0.02, [])):
        centre = west_edge - east_of_circle - short_by
        assert reach(lat=36.1, lon=centre, radius_mi=10) == reached, short_by


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Walks of 3 index entries (12 when stretched), and how many page queries the searches
    ran (walks and planned queries alike): one entry per query, read with `len`."""
    monkeypatch.setattr(repository, "WALK_BUDGET", 3)
    ran: list[int] = []
    hits = repository.SearchRepository._hits

    async def counted(self: repository.SearchRepository, *args: Any) -> list[repository.Hit]:
        ran.append(1)
        return await hits(self, *args)

    monkeypatch.setattr(repository.SearchRepository, "_hits", counted)
    return ran


async def test_a_walk_reads_only_the_markets_the_search_can_reach(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, queries: list[int]
) -> None:
    """Phoenix's leads are cheaper than Las Vegas's: a price walk over every market would read
    them first and, with a budget of 3, come up short of a page; the walk of the one market a
    Las Vegas radius reaches (and of leads with no market) fills the page by itself."""
    now = clock.now()
    lat, lon = CENTER
    phoenix = [
        lead_row(
            now,
            market="phoenix",
            state="AZ",
            latitude=PHOENIX[0] + i * STEP,
            longitude=PHOENIX[1],
            list_price_cents=10_000_000 + i,
        )
        for i in range(4)
    ]
    vegas = [
        lead_row(now, latitude=lat + i * STEP, longitude=lon, list_price_cents=40_000_000 + i)
        for i in range(3)
    ]
    marketless = lead_row(now, market=None, list_price_cents=30_000_000)
    await add_leads(runtime, *phoenix, *vegas, marketless)

    body = await search(api, agent, lat=lat, lon=lon, radius_mi=10, sort="price", limit=2)

    assert ids(body) == [str(marketless.id), str(vegas[0].id)]
    assert len(queries) == 1  # the walk's page was full: no second query
    everywhere = await search(api, agent, sort="price", limit=3)
    assert ids(everywhere) == [str(x.id) for x in phoenix[:3]]


async def test_a_walk_that_finds_a_few_matches_walks_further_before_asking_the_planner(
    api: Api, agent: Account, runtime: Runtime, clock: FrozenClock, queries: list[int]
) -> None:
    """Cheap homes are small: a search for big ones, cheapest first, finds few in the first
    entries of the price index and more further on. A walk that found some goes on
    (`WALK_STRETCH` times as far); one that found none asks the planner at once."""
    now = clock.now()
    beds = [2, 5, 2, 2, 2, 5, 2, 2, 2, 5, 6, 2]  # cheapest first
    leads = [
        lead_row(now, beds=n, list_price_cents=20_000_000 + i * 1_000_000)
        for i, n in enumerate(beds)
    ]
    await add_leads(runtime, *leads)  # a stretched walk (12) reads the whole market

    big = await search(api, agent, market="las-vegas", min_beds=4, sort="price", limit=2)
    walks = len(queries)
    biggest = await search(api, agent, market="las-vegas", min_beds=6, sort="price", limit=2)

    assert ids(big) == [str(leads[1].id), str(leads[5].id)]
    assert big["next_cursor"] is not None
    assert walks == 2  # 1 match in 3 entries, a page (and one more) in 12
    assert ids(biggest) == [str(leads[10].id)]
    assert len(queries) - walks == 2  # no match in 3 entries: the planned query next
