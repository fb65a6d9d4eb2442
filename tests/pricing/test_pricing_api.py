"""Prices through the API: explained to agents, discounted by plan, stored with history by the
recompute, tuned and simulated by operators (audited, effective at the next recompute)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from aiqleads.accounts.models import User
from aiqleads.demand.models import DemandKind
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity
from aiqleads.pricing import service as pricing_service
from aiqleads.pricing.models import LeadPrice, PriceChange
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from tests.conftest import Account, Api
from tests.search.factories import add_leads, lead_row

ADMIN_PRICING = "/api/v1/admin/pricing"
pytestmark = pytest.mark.no_scheduler  # the tests run every recompute themselves


async def price_of(api: Api, account: Account, lead_id: uuid.UUID) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/leads/{lead_id}/price", headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_plan(runtime: Runtime, email: str, plan: str) -> None:
    async with runtime.transaction() as session:
        await session.execute(sa.update(User).where(User.email == email).values(plan=plan))


async def stored(runtime: Runtime) -> tuple[dict[uuid.UUID, int], list[PriceChange]]:
    async with runtime.transaction(write=False) as session:
        prices = {p.lead_id: p.price_cents for p in await session.scalars(sa.select(LeadPrice))}
        history = list(await session.scalars(sa.select(PriceChange)))
    return prices, history


async def test_an_agent_sees_the_price_explained_and_a_pro_plan_pays_less(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    basic = await api.signup("basic@realty.example.com")
    pro = await api.signup("pro@realty.example.com")
    await set_plan(runtime, pro.email, "pro")
    lead = (await add_leads(runtime, lead_row(clock.now(), quality_score=85)))[0]
    await recompute(runtime)

    body = await price_of(api, basic, lead.id)
    discounted = await price_of(api, pro, lead.id)

    assert body["base_cents"] == 12_500  # a seller lead, default configuration
    assert [s["factor"] for s in body["steps"]][:6] == [
        "quality",
        "fraud",
        "demand",
        "supply",
        "freshness",
        "exclusivity",
    ]
    assert (
        body["base_cents"] + sum(s["contribution_cents"] for s in body["steps"])
        == (body["price_cents"])
    )
    assert body["steps"][0]["contribution_cents"] > 0  # quality 85 is above neutral
    assert discounted["plan"] == "pro"
    assert discounted["steps"][-1]["factor"] == "plan"
    assert discounted["price_cents"] < body["price_cents"]
    # The stored price (history) is the basic plan's, the same number.
    assert (await stored(runtime))[0][lead.id] == body["price_cents"]
    # Search cards and the lead page show each agent their own price.
    for account, expected in ((basic, body), (pro, discounted)):
        card = (await api.client.get("/api/v1/leads/search", headers=account.auth)).json()
        page = (await api.client.get(f"/api/v1/leads/{lead.id}", headers=account.auth)).json()
        assert card["items"][0]["price_cents"] == expected["price_cents"]
        assert page["price_cents"] == expected["price_cents"]


async def test_no_price_for_a_lead_that_is_not_on_sale(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    sold = (await add_leads(runtime, lead_row(clock.now(), status=LeadStatus.SOLD)))[0]

    response = await api.client.get(f"/api/v1/leads/{sold.id}/price", headers=agent.auth)

    assert response.status_code == 404
    assert response.json()["code"] == "lead_not_found"


async def test_recompute_stores_prices_and_history_only_when_they_change(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    old, new = await add_leads(
        runtime,
        lead_row(now - timedelta(days=20), created_at=now - timedelta(days=20)),
        lead_row(now),
    )

    first = await recompute(runtime)
    again = await recompute(runtime)
    clock.advance(timedelta(minutes=15))  # the next scheduled run: freshness steps by days
    quarter = await recompute(runtime)
    before, _ = await stored(runtime)
    clock.advance(timedelta(days=10))  # both age: freshness takes more off
    later = await recompute(runtime)
    prices, history = await stored(runtime)

    assert (first.priced, first.changed) == (2, 2)
    assert (again.priced, again.changed) == (2, 0)
    assert (quarter.priced, quarter.changed) == (2, 0)
    assert (later.priced, later.changed) == (2, 2)
    assert prices[new.id] > prices[old.id]
    for lead in (old, new):
        assert prices[lead.id] < before[lead.id]
        trail = sorted((h for h in history if h.lead_id == lead.id), key=lambda h: h.computed_at)
        assert [h.price_cents for h in trail] == [before[lead.id], prices[lead.id]]


async def test_a_recompute_in_many_chunks_stores_the_price_each_lead_explains(
    api: Api, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recompute reads, prices and stores leads a chunk at a time, pricing the next chunk
    # while the last one commits: no lead may be missed, priced twice or priced otherwise
    # than its explanation says.
    monkeypatch.setattr(pricing_service, "RECOMPUTE_CHUNK", 3)
    agent = await api.signup("chunks@realty.example.com")
    now = clock.now()
    leads = await add_leads(
        runtime,
        *(
            lead_row(
                now,
                created_at=now - timedelta(days=4 * n, hours=n),
                kind=("seller", "buyer", "fsbo")[n % 3],
                market=("las-vegas", "phoenix")[n % 2],
                quality_score=40 + 5 * n,
                exclusivity=(Exclusivity.EXCLUSIVE, Exclusivity.SHARED)[n % 2],
                max_sales=1 + 2 * (n % 2),
                sales_count=n % 2,
            )
            for n in range(10)
        ),
    )

    result = await recompute(runtime)
    again = await recompute(runtime)  # each page finds its leads' stored prices: no change
    prices, history = await stored(runtime)

    assert (result.priced, result.changed) == (10, 10)
    assert (again.priced, again.changed) == (10, 0)
    assert prices == {
        lead.id: (await price_of(api, agent, lead.id))["price_cents"] for lead in leads
    }
    assert sorted(h.lead_id for h in history) == sorted(lead.id for lead in leads)
    assert len(set(prices.values())) > 5  # the leads differ, and so do their prices


async def test_demand_for_similar_leads_raises_their_price_at_the_next_recompute(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    now = clock.now()
    seller, buyer_lead = await add_leads(runtime, lead_row(now), lead_row(now, kind="buyer"))
    await recompute(runtime)
    before = await price_of(api, agent, seller.id)
    buyer_before = await price_of(api, agent, buyer_lead.id)

    for _ in range(30):  # views: unlike cart adds, they do not trigger a recompute themselves
        runtime.demand.record(
            DemandKind.VIEW,
            user_id=None,
            lead_id=seller.id,
            market="las-vegas",
            lead_kind="seller",
        )
    await runtime.demand.flush()
    unchanged = await price_of(api, agent, seller.id)
    await recompute(runtime)
    after = await price_of(api, agent, seller.id)
    buyer_after = await price_of(api, agent, buyer_lead.id)

    assert unchanged["price_cents"] == before["price_cents"]  # prices move at a recompute
    assert after["price_cents"] > before["price_cents"]
    demand = next(s for s in after["steps"] if s["factor"] == "demand")
    assert demand["contribution_cents"] > 0
    assert "30.00 weighted views" in demand["detail"]  # thirty views of one similar lead
    # Before, the market had no demand at all (neutral); now buyers' leads draw none of it.
    assert buyer_after["price_cents"] < buyer_before["price_cents"]


async def test_operators_tune_a_market_audited_and_effective_at_the_next_recompute(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    admin = await api.admin()
    agent = await api.signup("agent@realty.example.com")
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    before = await price_of(api, agent, lead.id)
    default = (await api.client.get(f"{ADMIN_PRICING}/las-vegas", headers=admin.auth)).json()
    config = default["config"] | {
        "base_cents": default["config"]["base_cents"] | {"seller": 20_000}
    }

    saved = await api.client.put(f"{ADMIN_PRICING}/las-vegas", json=config, headers=admin.auth)
    pending = await price_of(api, agent, lead.id)
    await recompute(runtime)
    after = await price_of(api, agent, lead.id)
    trail = await api.client.get(
        "/api/v1/admin/audit", params={"subject_type": "pricing_config"}, headers=admin.auth
    )

    assert default["version"] == 0
    assert saved.status_code == 200
    assert saved.json()["version"] == 1
    assert pending["price_cents"] == before["price_cents"]
    assert after["base_cents"] == 20_000
    assert after["config_version"] == 1
    assert after["price_cents"] > before["price_cents"]
    event = trail.json()["items"][0]
    assert event["action"] == "pricing.config_saved"
    assert event["subject_id"] == "las-vegas"
    assert event["detail"]["changes"] == {"base_cents.seller": [12_500, 20_000]}
    assert event["request_id"]

    # A saved version never changes, so the process reads it once, not once per request.
    reads: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM pricing_configs" in statement:
            reads.append(statement)

    sa.event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        again = [await price_of(api, agent, lead.id) for _ in range(3)]
    finally:
        sa.event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    assert [p["price_cents"] for p in again] == [after["price_cents"]] * 3
    assert reads == []


async def test_bad_configurations_and_agents_are_refused(api: Api) -> None:
    admin = await api.admin()
    agent = await api.signup("agent@realty.example.com")
    url = f"{ADMIN_PRICING}/las-vegas"

    inverted = await api.client.put(
        url, json={"floor_cents": 900, "ceiling_cents": 100}, headers=admin.auth
    )
    unknown_kind = await api.client.put(
        url,
        json={
            "base_cents": {
                "seller": 1,
                "buyer": 1,
                "fsbo": 1,
                "expired_listing": 1,
                "solar_homeowner": 1,
                "pet": 5,
            }
        },
        headers=admin.auth,
    )
    typo = await api.client.put(url, json={"wieghts": {}}, headers=admin.auth)
    nowhere = await api.client.get(f"{ADMIN_PRICING}/atlantis", headers=admin.auth)
    as_agent = await api.client.put(url, json={}, headers=agent.auth)

    assert inverted.status_code == 422
    assert "floor_cents is above ceiling_cents" in inverted.text
    assert unknown_kind.status_code == 422
    assert typo.status_code == 422
    assert nowhere.status_code == 404
    assert nowhere.json()["code"] == "unknown_market"
    assert as_agent.status_code == 403


async def test_simulation_shows_new_prices_without_saving(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    admin = await api.admin()
    await add_leads(runtime, *(lead_row(clock.now(), quality_score=q) for q in (40, 60, 80)))
    await recompute(runtime)
    config = (await api.client.get(f"{ADMIN_PRICING}/las-vegas", headers=admin.auth)).json()
    doubled = config["config"] | {"floor_cents": 30_000, "ceiling_cents": 90_000}

    response = await api.client.post(
        f"{ADMIN_PRICING}/simulate",
        json={"market": "las-vegas", "config": doubled},
        headers=admin.auth,
    )
    still = (await api.client.get(f"{ADMIN_PRICING}/las-vegas", headers=admin.auth)).json()

    body = response.json()
    assert response.status_code == 200
    assert body["leads"] == 3
    assert body["changed"] == 3
    assert body["proposed"]["min_cents"] == 30_000
    assert body["current"]["max_cents"] < 30_000
    assert still["version"] == 0


async def test_cart_adds_reprice_their_market_in_the_background(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    before = (await stored(runtime))[0][lead.id]

    for _ in range(10):
        runtime.demand.record(
            DemandKind.CART_ADD,
            user_id=None,
            lead_id=lead.id,
            market="las-vegas",
            lead_kind="seller",
        )
    await runtime.demand.flush()  # what the recorder's loop does every second
    for _ in range(100):  # the recompute job runs in-process
        after = (await stored(runtime))[0][lead.id]
        if after != before:
            break
        await asyncio.sleep(0.05)

    assert after > before
