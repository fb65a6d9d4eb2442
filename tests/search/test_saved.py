"""Saved searches: kept per agent, private to them, and announcing new matching leads in the
app and by e-mail as the agent's preferences say."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from aiqleads.kit.clock import FrozenClock
from aiqleads.runtime import Runtime
from aiqleads.search.models import SavedSearch
from aiqleads.search.repository import SearchRepository
from aiqleads.search.saved import ALERT_OVERLAP, MAX_SAVED, check_saved_searches
from tests.conftest import Account, Api
from tests.search.factories import add_leads, lead_row

SAVED = "/api/v1/saved-searches"
pytestmark = pytest.mark.no_scheduler  # the tests run the alert job themselves

HENDERSON = {"market": "las-vegas", "kind": ["seller"], "min_beds": 3, "q": "pool"}


async def save(api: Api, agent: Account, **body: Any) -> dict[str, Any]:
    body = {"name": "Sellers with pools", "filters": HENDERSON} | body
    response = await api.client.post(SAVED, json=body, headers=agent.auth)
    assert response.status_code == 201, response.text
    saved: dict[str, Any] = response.json()
    return saved


async def inbox(api: Api, agent: Account, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/notifications", params=params, headers=agent.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_agent_keeps_edits_and_deletes_saved_searches_that_others_cannot_see(
    api: Api,
) -> None:
    agent = await api.signup("agent@realty.example.com")
    rival = await api.signup("rival@realty.example.com")
    saved = await save(api, agent)
    url = f"{SAVED}/{saved['id']}"

    listed = (await api.client.get(SAVED, headers=agent.auth)).json()
    patched = await api.client.patch(
        url,
        json={"name": "Pools, 4+ beds", "filters": HENDERSON | {"min_beds": 4}},
        headers=agent.auth,
    )
    peek = await api.client.get(url, headers=rival.auth)
    tamper = await api.client.delete(url, headers=rival.auth)
    rival_list = (await api.client.get(SAVED, headers=rival.auth)).json()
    deleted = await api.client.delete(url, headers=agent.auth)
    gone = await api.client.get(url, headers=agent.auth)

    assert saved["filters"]["min_beds"] == 3
    assert saved["notify"] is True
    assert [s["id"] for s in listed] == [saved["id"]]
    assert patched.json()["filters"]["min_beds"] == 4
    assert patched.json()["name"] == "Pools, 4+ beds"
    assert peek.status_code == 404
    assert tamper.status_code == 404
    assert rival_list == []
    assert deleted.status_code == 204
    assert gone.json()["code"] == "saved_search_not_found"


async def test_bad_saved_searches_are_refused(api: Api) -> None:
    agent = await api.signup("agent@realty.example.com")

    newline = await api.client.post(
        SAVED, json={"name": "x\r\nBcc: all@example.com", "filters": {}}, headers=agent.auth
    )
    bad_filter = await api.client.post(
        SAVED, json={"name": "x", "filters": {"min_beds": -1}}, headers=agent.auth
    )
    nowhere = await api.client.post(
        SAVED, json={"name": "x", "filters": {"market": "atlantis"}}, headers=agent.auth
    )
    for i in range(MAX_SAVED):
        await save(api, agent, name=f"search {i}")
    one_too_many = await api.client.post(
        SAVED, json={"name": "x", "filters": {}}, headers=agent.auth
    )

    assert newline.status_code == 422
    for separator in ("\u2028", "\u2029", "\x85", "\x0b"):  # line breaks to the email package
        named = await api.client.post(
            SAVED, json={"name": f"Pools{separator}Spas", "filters": {}}, headers=agent.auth
        )
        assert named.status_code == 422, separator
    assert bad_filter.status_code == 422
    assert nowhere.json()["code"] == "unknown_market"
    assert one_too_many.status_code == 409
    assert one_too_many.json()["code"] == "too_many_saved_searches"


async def test_a_nul_character_in_stored_text_is_a_clear_422_on_postgresql(
    api: Api, database_url: str
) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000. Text a person types is checked on the
    way in (names, notes, reasons); one that reaches the database another way (a saved
    search's words, kept as JSON) is refused there, as a problem, not a 500."""
    agent = await api.signup("agent@realty.example.com")
    name = await api.client.post(
        SAVED, json={"name": "po\x00ol", "filters": {}}, headers=agent.auth
    )
    words = await api.client.post(
        SAVED, json={"name": "x", "filters": {"q": "po\x00ol"}}, headers=agent.auth
    )
    assert name.status_code == 422
    if database_url.startswith("postgresql"):
        assert words.status_code == 422
        assert words.headers["content-type"] == "application/problem+json"
        assert words.json()["code"] == "invalid_text"
    else:  # SQLite keeps it as it came
        assert words.status_code == 201


@pytest.mark.parametrize("failure", ["stale filters", "refused by the database"])
async def test_one_broken_saved_search_stops_no_one_elses_alerts(
    api: Api,
    runtime: Runtime,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    victim = await api.signup("victim@realty.example.com")
    other = await api.signup("other@realty.example.com")
    broken = await save(api, other, filters={"market": "las-vegas"})
    await save(api, victim, filters={"market": "las-vegas"})
    broken_id = uuid.UUID(broken["id"])
    if failure == "stale filters":  # saved before today's ceilings
        async with runtime.transaction() as session:
            await session.execute(
                sa.update(SavedSearch)
                .where(SavedSearch.id == broken_id)
                .values(filters={"market": "las-vegas", "min_price_cents": 10**13})
            )
    else:  # the database refuses its search, after the job marked it checked
        page = SearchRepository.page

        async def refused(self: SearchRepository, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("unannounced_for") == broken_id:
                await self.session.execute(sa.text("SELECT no_such_column FROM leads"))
            return await page(self, *args, **kwargs)

        monkeypatch.setattr(SearchRepository, "page", refused)
    for _ in range(2):  # the broken one is checked too, not retried on every run
        clock.advance(timedelta(minutes=5))
        await add_leads(runtime, lead_row(clock.now()))
        assert await check_saved_searches(runtime, clock.now() + timedelta(seconds=1)) == 1
    assert [n["kind"] for n in await inbox(api, victim)] == ["saved_search_alert"] * 2
    async with runtime.transaction(write=False) as session:
        checked = await session.scalar(
            sa.select(SavedSearch.checked_at).where(SavedSearch.id == broken_id)
        )
    assert checked == clock.now() + timedelta(seconds=1)


async def test_new_matching_leads_are_announced_once_in_the_app_and_by_email(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    saved = await save(api, agent)
    old = (await add_leads(runtime, lead_row(clock.now() - timedelta(days=1))))[0]
    clock.advance(timedelta(minutes=5))
    now = clock.now()
    match = lead_row(now, beds=4, description="Pool and spa, call 702-555-0143")
    small = lead_row(now, beds=2, description="Pool")
    no_pool = lead_row(now, beds=4, description="Big yard")
    await add_leads(runtime, match, small, no_pool)

    told = await check_saved_searches(runtime, now + timedelta(seconds=1))
    again = await check_saved_searches(runtime, now + timedelta(minutes=5))
    notes = await inbox(api, agent)
    mails = await api.emails_to(agent.email, "saved_search_alert")
    results = (await api.client.get(f"{SAVED}/{saved['id']}/results", headers=agent.auth)).json()

    assert told == 1
    assert again == 0
    assert len(notes) == 1
    assert notes[0]["title"] == '1 new lead match "Sellers with pools"'
    assert notes[0]["data"]["lead_ids"] == [str(match.id)]
    assert len(mails) == 1
    assert str(match.id) in mails[0].body_text
    assert "W SAHARA AVE" in mails[0].body_text
    assert "4500" not in mails[0].body_text
    distance = await api.client.get(
        f"{SAVED}/{saved['id']}/results", params={"sort": "distance"}, headers=agent.auth
    )
    assert distance.status_code == 422  # the saved search has no point to measure from
    assert distance.json()["code"] == "invalid_sort"
    # The results are every match now; the alert named only what was new.
    assert {i["id"] for i in results["items"]} == {str(match.id), str(old.id)}


async def test_preferences_decide_where_alerts_go(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    app_only = await api.signup("app@realty.example.com")
    silent = await api.signup("silent@realty.example.com")
    await api.client.patch(
        "/api/v1/users/me",
        json={"notification_preferences": {"email": False}},
        headers=app_only.auth,
    )
    await api.client.patch(
        "/api/v1/users/me",
        json={"notification_preferences": {"new_matching_leads": False}},
        headers=silent.auth,
    )
    for agent in (app_only, silent):
        await save(api, agent)
    clock.advance(timedelta(minutes=1))
    await add_leads(runtime, lead_row(clock.now(), beds=5))

    await check_saved_searches(runtime, clock.now() + timedelta(seconds=1))

    assert len(await inbox(api, app_only)) == 1
    assert await api.emails_to(app_only.email, "saved_search_alert") == []
    assert await inbox(api, silent) == []
    assert await api.emails_to(silent.email, "saved_search_alert") == []


async def test_alerts_turned_back_on_announce_only_what_arrives_from_then(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Leads that arrived while an agent's alerts were off are in the search's results, not
    news: the first alert after turning them on names only leads new since."""
    agent = await api.signup("agent@realty.example.com")
    saved = await save(api, agent)
    url = f"{SAVED}/{saved['id']}"
    off = await api.client.patch(url, json={"notify": False}, headers=agent.auth)
    assert off.status_code == 200, off.text
    clock.advance(timedelta(minutes=1))
    while_off = await add_leads(runtime, *(lead_row(clock.now(), beds=4) for _ in range(3)))
    await check_saved_searches(runtime, clock.now() + timedelta(seconds=1))
    clock.advance(ALERT_OVERLAP + timedelta(minutes=1))  # a check looks this far back anyway
    assert (await api.client.patch(url, json={"notify": True}, headers=agent.auth)).is_success
    clock.advance(timedelta(minutes=1))
    (fresh,) = await add_leads(runtime, lead_row(clock.now(), beds=4))
    await check_saved_searches(runtime, clock.now() + timedelta(seconds=1))

    (alert,) = await inbox(api, agent)
    assert alert["data"]["lead_ids"] == [str(fresh.id)]
    assert all(str(lead.id) not in str(alert) for lead in while_off)


async def test_notifications_are_read_one_by_one_or_all_at_once_by_their_owner_only(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    rival = await api.signup("rival@realty.example.com")
    await save(api, agent)
    for _ in range(3):
        clock.advance(timedelta(minutes=2))  # (access tokens last 15 minutes)
        await add_leads(runtime, lead_row(clock.now(), beds=4))
        await check_saved_searches(runtime, clock.now() + timedelta(seconds=1))
    notes = await inbox(api, agent)
    first = f"/api/v1/notifications/{notes[0]['id']}/read"

    stolen = await api.client.post(first, headers=rival.auth)
    read = await api.client.post(first, headers=agent.auth)
    unread = await inbox(api, agent, unread="true")
    everything = await api.client.post("/api/v1/notifications/read-all", headers=agent.auth)

    assert len(notes) == 3
    assert stolen.status_code == 404
    assert read.json() == {"marked": 1}
    assert len(unread) == 2
    assert everything.json() == {"marked": 2}
    assert await inbox(api, agent, unread="true") == []


async def test_a_lead_committed_after_the_check_is_still_announced_but_only_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """An ingestion batch stamps its leads when it starts and commits later: a check that ran
    in between must not make the next check skip them."""
    agent = await api.signup("agent@realty.example.com")
    await save(api, agent)
    clock.advance(timedelta(minutes=1))
    stamped = clock.now()
    await check_saved_searches(runtime, stamped + timedelta(seconds=30))  # finds nothing yet
    late = lead_row(stamped, beds=4)  # stamped before that check, committed after it
    await add_leads(runtime, late)

    first = await check_saved_searches(runtime, stamped + timedelta(minutes=5))
    second = await check_saved_searches(runtime, stamped + timedelta(minutes=10))

    assert first == 1
    assert second == 0
    notes = await inbox(api, agent)
    assert [n["data"]["lead_ids"] for n in notes] == [[str(late.id)]]
