"""Prices through the API: explained to agents, discounted by plan, stored with history by the
recompute, tuned and simulated by operators (audited, effective at the next recompute)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
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


async def load(api: Api, admin: Account, market: str = "las-vegas") -> tuple[dict[str, Any], str]:
    """A market's configuration as an operator loads it to edit: the config and its ETag."""
    response = await api.client.get(f"{ADMIN_PRICING}/{market}", headers=admin.auth)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()["config"]
    return config, response.headers["ETag"]


async def save(
    api: Api, admin: Account, config: dict[str, Any], etag: str, market: str = "las-vegas"
) -> httpx.Response:
    """PUT `config`, an edit of the version `etag` names."""
    return await api.client.put(
        f"{ADMIN_PRICING}/{market}", json=config, headers=admin.auth | {"If-Match": etag}
    )


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


async def test_overlapping_recomputes_write_each_price_change_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    # The 15-minute schedule, an operator's recompute and the recompute of a market that a
    # cart add asks for can run at the same time, over the same leads.
    now = clock.now()
    leads = await add_leads(runtime, *(lead_row(now, quality_score=40 + n) for n in range(5)))

    first = await asyncio.gather(recompute(runtime), recompute(runtime, market="las-vegas"))
    _, history = await stored(runtime)
    clock.advance(timedelta(days=10))  # every lead ages: each price falls once
    later = await asyncio.gather(recompute(runtime, market="las-vegas"), recompute(runtime))
    prices, trail = await stored(runtime)

    assert sorted(h.lead_id for h in history) == sorted(lead.id for lead in leads)
    assert sum(r.changed for r in first) == len(leads)
    assert sorted(h.lead_id for h in trail) == sorted(2 * [lead.id for lead in leads])
    assert sum(r.changed for r in later) == len(leads)
    latest = {h.lead_id: h for h in sorted(trail, key=lambda h: h.computed_at)}
    assert {lead_id: h.price_cents for lead_id, h in latest.items()} == prices


async def test_demand_for_similar_leads_raises_their_price_at_the_next_recompute(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    now = clock.now()
    seller, buyer_lead = await add_leads(runtime, lead_row(now), lead_row(now, kind="buyer"))
    await recompute(runtime)
    before = await price_of(api, agent, seller.id)
    buyer_before = await price_of(api, agent, buyer_lead.id)

    # Views (unlike cart adds, they do not trigger a recompute themselves): thirty agents once
    # each, and one agent reloading the page thirty times, which counts once.
    reloader = uuid.uuid4()
    for viewer in [*(uuid.uuid4() for _ in range(30)), *([reloader] * 30)]:
        runtime.demand.record(
            DemandKind.VIEW,
            user_id=viewer,
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
    assert "31.00 weighted views" in demand["detail"]  # 31 agents viewed a similar lead
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

    saved = await save(api, admin, config, '"0"')
    pending = await price_of(api, agent, lead.id)
    await recompute(runtime)
    after = await price_of(api, agent, lead.id)
    trail = await api.client.get(
        "/api/v1/admin/audit", params={"subject_type": "pricing_config"}, headers=admin.auth
    )

    assert default["version"] == 0
    assert saved.status_code == 200
    assert saved.json()["version"] == 1
    assert saved.headers["ETag"] == '"1"'
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
    default, etag = await load(api, admin)

    def edit(**changes: Any) -> dict[str, Any]:
        return default | changes

    inverted = await save(api, admin, edit(floor_cents=900, ceiling_cents=100), etag)
    unknown_kind = await save(api, admin, edit(base_cents=default["base_cents"] | {"pet": 5}), etag)
    typo = {k: v for k, v in default.items() if k != "weights"} | {"wieghts": default["weights"]}
    misspelt = await save(api, admin, typo, etag)
    # Money is whole cents and weights are numbers: no true for 1, no "100", no 99.5 cents.
    loose = [
        await save(api, admin, body, etag)
        for body in (
            edit(floor_cents=True),
            edit(ceiling_cents="90000"),
            edit(floor_cents=99.5),
            edit(weights=default["weights"] | {"quality": True}),
        )
    ]
    nowhere = await api.client.get(f"{ADMIN_PRICING}/atlantis", headers=admin.auth)
    as_agent = await api.client.put(url, json=default, headers=agent.auth | {"If-Match": etag})

    assert inverted.status_code == 422
    assert "floor_cents is above ceiling_cents" in inverted.text
    assert unknown_kind.status_code == 422
    assert "base_cents names unknown kinds: pet" in unknown_kind.text
    assert misspelt.status_code == 422
    assert [r.status_code for r in loose] == [422] * 4
    assert (await api.client.get(url, headers=admin.auth)).json()["version"] == 0
    assert nowhere.status_code == 404
    assert nowhere.json()["code"] == "unknown_market"
    assert as_agent.status_code == 403


async def test_a_put_must_carry_the_whole_configuration(api: Api) -> None:
    # A field left out is refused by name, not filled in with its built-in value: that would
    # silently undo what an earlier version set.
    admin = await api.admin()
    config, etag = await load(api, admin)
    tuned = config | {
        "base_cents": config["base_cents"] | {"seller": 20_000},
        "floor_cents": 5_000,
    }
    saved = await save(api, admin, tuned, etag)
    assert saved.status_code == 200, saved.text

    partial = await save(api, admin, {"weights": {"demand": 0.4}}, saved.headers["ETag"])
    simulated = await api.client.post(
        f"{ADMIN_PRICING}/simulate",
        json={"market": "las-vegas", "config": {"floor_cents": 3_000}},
        headers=admin.auth,
    )
    after, after_etag = await load(api, admin)

    def missing(response: httpx.Response, prefix: int) -> set[tuple[str, ...]]:
        errors = response.json()["errors"]
        return {tuple(e["loc"][prefix:]) for e in errors if e["type"] == "missing"}

    assert partial.status_code == 422
    assert partial.json()["code"] == "validation_error"
    assert missing(partial, 1) == {(f,) for f in config if f != "weights"} | {
        ("weights", "quality"),
        ("weights", "fraud"),
        ("weights", "supply"),
    }
    assert simulated.status_code == 422
    assert missing(simulated, 2) == {(f,) for f in config if f != "floor_cents"}
    assert (after, after_etag) == (tuned, '"1"')


async def test_a_save_names_the_version_it_edits_and_an_edit_of_an_old_one_is_refused(
    api: Api,
) -> None:
    al = await api.admin("al@aiqleads.example.com")
    bea = await api.admin("bea@aiqleads.example.com")
    url = f"{ADMIN_PRICING}/las-vegas"
    # Both open the built-in configuration; Bea saves first, then Al saves his edit.
    al_config, al_etag = await load(api, al)
    bea_config, bea_etag = await load(api, bea)
    bea_saved = await save(api, bea, bea_config | {"floor_cents": 8_000}, bea_etag)
    al_saved = await save(api, al, al_config | {"exclusive_premium": 1.0}, al_etag)
    blind = await api.client.put(url, json=al_config, headers=al.auth)
    unheard_of = await save(api, al, al_config, '"7"')
    final, final_etag = await load(api, al)

    assert al_etag == bea_etag == '"0"'
    assert bea_saved.status_code == 200
    assert bea_saved.headers["ETag"] == '"1"'
    assert al_saved.status_code == 409
    assert al_saved.json()["code"] == "pricing_config_changed"
    assert blind.status_code == 428
    assert blind.headers["content-type"] == "application/problem+json"
    assert blind.json()["code"] == "precondition_required"
    assert unheard_of.status_code == 409
    assert (final["floor_cents"], final["exclusive_premium"]) == (8_000, 0.5)
    assert final_etag == '"1"'

    # Al reloads and makes his change again, on top of Bea's.
    again = await save(api, al, final | {"exclusive_premium": 1.0}, final_etag)
    assert again.status_code == 200, again.text
    assert again.headers["ETag"] == '"2"'
    assert (again.json()["config"]["floor_cents"], again.json()["config"]["exclusive_premium"]) == (
        8_000,
        1.0,
    )


async def test_two_saves_of_one_version_at_once_keep_one(api: Api) -> None:
    admin = await api.admin()
    config, etag = await load(api, admin)

    results = await asyncio.gather(
        *(save(api, admin, config | {"floor_cents": cents}, etag) for cents in (3_000, 4_000))
    )
    final, final_etag = await load(api, admin)

    assert sorted(r.status_code for r in results) == [200, 409]
    (won,) = (r for r in results if r.status_code == 200)
    assert (final, final_etag) == (won.json()["config"], '"1"')


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


async def test_simulating_a_plan_discount_shows_what_each_plan_would_pay(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    admin = await api.admin()
    agent = await api.signup("enterprise@realty.example.com")
    await set_plan(runtime, agent.email, "enterprise")
    leads = await add_leads(
        runtime, *(lead_row(clock.now(), quality_score=q) for q in (40, 60, 80))
    )
    await recompute(runtime)
    config, etag = await load(api, admin)
    # Enterprise buyers would pay half price instead of 20 % off; no other price changes.
    proposed = config | {"tier_discounts": config["tier_discounts"] | {"enterprise": 0.5}}

    response = await api.client.post(
        f"{ADMIN_PRICING}/simulate",
        json={"market": "las-vegas", "config": proposed},
        headers=admin.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (await save(api, admin, proposed, etag)).status_code == 200
    await recompute(runtime)

    assert body["changed"] == len(leads)
    assert {plan: figures["changed"] for plan, figures in body["plans"].items()} == {
        "basic": 0,
        "pro": 0,
        "enterprise": len(leads),
    }
    assert body["current"] == body["proposed"] == body["plans"]["basic"]["current"]
    enterprise = body["plans"]["enterprise"]
    assert enterprise["proposed"]["max_cents"] < enterprise["current"]["min_cents"]
    # What the simulation promised is what an Enterprise buyer is then charged.
    for example in body["examples"]:
        charged = await price_of(api, agent, uuid.UUID(example["lead_id"]))
        assert charged["price_cents"] == example["plans"]["enterprise"]["proposed_cents"]
        assert example["current_cents"] == example["proposed_cents"]
    assert len(body["examples"]) == len(leads)


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


async def test_an_operators_request_to_reprice_now_is_audited(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Asking for a recompute is what puts a saved configuration in force: the audit log says
    who asked, and when."""
    from aiqleads.audit.models import AuditEvent

    admin = await api.admin()
    agent = await api.signup("agent@realty.example.com")
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    refused = await api.client.post(f"{ADMIN_PRICING}/recompute", headers=agent.auth)
    accepted = await api.client.post(f"{ADMIN_PRICING}/recompute", headers=admin.auth)
    assert (refused.status_code, accepted.status_code) == (403, 202)
    await runtime.jobs.wait_idle()
    async with runtime.transaction(write=False) as session:
        assert await session.get(LeadPrice, lead.id) is not None  # repriced in the background
        rows = (
            await session.execute(
                sa.select(AuditEvent.action, AuditEvent.actor_id).where(
                    AuditEvent.action == "pricing.recompute_requested"
                )
            )
        ).all()
    me = (await api.client.get("/api/v1/users/me", headers=admin.auth)).json()
    assert [(action, str(actor)) for action, actor in rows] == [
        ("pricing.recompute_requested", me["id"])
    ]
