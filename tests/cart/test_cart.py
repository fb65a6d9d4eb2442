"""Carts on both dialects: a lead held at a locked price, one holder of an exclusive lead, as
many as a shared lead has sales left, holds that lapse, and extensions by plan."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.audit.models import AuditEvent
from aiqleads.cart import service as cart_service
from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.cart.service import expire_lapsed, warn_lapsing
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.mail.models import OutboundEmail
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from tests.commerce import ITEMS, add, buyers, cart, lead_status, signed_in_again, user_of
from tests.conftest import Api
from tests.search.factories import add_leads, lead_row


async def holding(
    api: Api, runtime: Runtime, clock: FrozenClock, plan: str = "basic"
) -> tuple[dict[str, str], Lead]:
    """A buyer on `plan` who holds a new lead on sale (priced first)."""
    (auth,) = await buyers(runtime, 1, plan=plan)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    assert (await add(api.client, auth, lead)).status_code == 201
    return auth, lead


async def test_a_held_lead_is_yours_at_the_quoted_price_and_off_sale_for_others(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    alice, bob = await buyers(runtime, 2)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    quoted = (await api.client.get(f"/api/v1/leads/{lead.id}/price", headers=alice)).json()

    added = await add(api.client, alice, lead)
    assert added.status_code == 201, added.text
    item = added.json()
    assert item["price_cents"] == quoted["price_cents"]
    assert item["expires_at"] > item["held_at"]
    assert item["lead"]["contact"]["phone"] is None  # masked until bought
    body = await cart(api.client, alice)
    assert [i["lead"]["id"] for i in body["items"]] == [str(lead.id)]
    assert body["total_cents"] == quoted["price_cents"]
    assert await lead_status(runtime, lead.id) is LeadStatus.HELD

    taken = await add(api.client, bob, lead)
    assert taken.status_code == 409
    assert taken.json()["code"] == "lead_unavailable"
    again = await add(api.client, alice, lead)
    assert again.json()["code"] == "already_in_cart"
    assert (await cart(api.client, bob))["items"] == []

    # The price is locked: a new configuration does not change what is in the cart.
    ops = await api.admin()
    current = await api.client.get("/api/v1/admin/pricing/las-vegas", headers=ops.auth)
    config = current.json()
    config["config"]["base_cents"]["seller"] *= 2
    saved = await api.client.put(
        "/api/v1/admin/pricing/las-vegas",
        json=config["config"],
        headers=ops.auth | {"If-Match": current.headers["ETag"]},
    )
    assert saved.status_code == 200, saved.text
    await recompute(runtime)
    assert (await cart(api.client, alice))["total_cents"] == quoted["price_cents"]

    async with runtime.transaction(write=False) as session:
        actions = list(await session.scalars(sa.select(AuditEvent.action)))
    assert "cart.hold" in actions


async def test_the_price_locked_in_a_cart_still_explains_itself(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Every price explains itself, the one a buyer is about to pay too: while they hold the
    lead (off sale for everyone else), its price page shows the quote they were given, not
    a 404, and not today's figures after a new configuration."""
    alice, bob = await buyers(runtime, 2)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    quoted = (await api.client.get(f"/api/v1/leads/{lead.id}/price", headers=alice)).json()
    assert (await add(api.client, alice, lead)).status_code == 201
    await runtime.demand.flush()
    clock.advance(timedelta(minutes=1))
    await recompute(runtime)  # the cart add is demand: today's figure moves

    shown = await api.client.get(f"/api/v1/leads/{lead.id}/price", headers=alice)
    assert shown.status_code == 200, shown.text
    assert shown.json() == quoted
    assert (
        sum(s["contribution_cents"] for s in quoted["steps"]) + quoted["base_cents"]
        == (quoted["price_cents"])
    )
    hidden = await api.client.get(f"/api/v1/leads/{lead.id}/price", headers=bob)
    assert hidden.status_code == 404  # off sale for anyone else

    clock.advance(timedelta(minutes=15))  # the hold lapses: back to today's price
    await expire_lapsed(runtime)
    alice = await signed_in_again(runtime, alice)
    today = (await api.client.get(f"/api/v1/leads/{lead.id}/price", headers=alice)).json()
    assert today["as_of"] != quoted["as_of"]


async def test_taking_a_lead_out_puts_it_back_on_sale(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    alice, bob = await buyers(runtime, 2)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    assert (await add(api.client, alice, lead)).status_code == 201
    removed = await api.client.delete(f"{ITEMS}/{lead.id}", headers=alice)
    assert removed.status_code == 204
    assert await lead_status(runtime, lead.id) is LeadStatus.AVAILABLE
    assert (await cart(api.client, alice))["items"] == []
    gone = await api.client.delete(f"{ITEMS}/{lead.id}", headers=alice)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_in_cart"
    assert (await add(api.client, bob, lead)).status_code == 201


async def test_a_hold_lapses_after_the_plans_time_and_pro_buyers_may_extend(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (basic,) = await buyers(runtime, 1)
    (pro,) = await buyers(runtime, 1, plan="pro")
    (other,) = await buyers(runtime, 1)
    first, second = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))
    await recompute(runtime)
    assert (await add(api.client, basic, first)).status_code == 201
    assert (await add(api.client, pro, second)).status_code == 201

    refused = await api.client.post(
        f"{ITEMS}/{first.id}/extend", json={"duration": "24h"}, headers=basic
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "plan_cannot_extend"
    extended = await api.client.post(
        f"{ITEMS}/{second.id}/extend", json={"duration": "3d"}, headers=pro
    )
    assert extended.status_code == 200, extended.text
    bad = await api.client.post(f"{ITEMS}/{second.id}/extend", json={"duration": "1y"}, headers=pro)
    assert bad.status_code == 422

    clock.advance(timedelta(minutes=15, seconds=1))
    # Tokens last 15 minutes: sign the buyers in again.
    basic, pro, other = [await signed_in_again(runtime, h) for h in (basic, pro, other)]
    assert (await cart(api.client, basic))["items"] == []
    assert [i["lead"]["id"] for i in (await cart(api.client, pro))["items"]] == [str(second.id)]
    # The lapsed hold ends the moment someone else adds the lead, before the job runs.
    assert (await add(api.client, other, first)).status_code == 201
    async with runtime.transaction(write=False) as session:
        ended = await session.scalar(
            sa.select(Hold.status).where(Hold.lead_id == first.id, Hold.ended_at.is_not(None))
        )
    assert ended is HoldStatus.EXPIRED

    clock.advance(timedelta(days=3))
    assert await expire_lapsed(runtime) == 2
    assert await lead_status(runtime, first.id) is LeadStatus.AVAILABLE
    assert await lead_status(runtime, second.id) is LeadStatus.AVAILABLE
    assert await expire_lapsed(runtime) == 0


async def test_a_shared_lead_is_held_by_as_many_buyers_as_it_has_sales_left(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    a, b, c = await buyers(runtime, 3)
    lead = (
        await add_leads(
            runtime,
            lead_row(clock.now(), exclusivity=Exclusivity.SHARED, max_sales=3, sales_count=1),
        )
    )[0]
    await recompute(runtime)
    assert (await add(api.client, a, lead)).status_code == 201
    assert await lead_status(runtime, lead.id) is LeadStatus.AVAILABLE
    assert (await add(api.client, b, lead)).status_code == 201
    assert await lead_status(runtime, lead.id) is LeadStatus.HELD
    assert (await add(api.client, c, lead)).json()["code"] == "lead_unavailable"
    assert (await api.client.delete(f"{ITEMS}/{lead.id}", headers=a)).status_code == 204
    assert (await add(api.client, c, lead)).status_code == 201


async def test_many_buyers_add_the_same_exclusive_lead_at_once_and_one_holds_it(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    crowd = await buyers(runtime, 200)
    for _ in range(2):
        lead = (await add_leads(runtime, lead_row(clock.now())))[0]
        await recompute(runtime)
        answers = await asyncio.gather(*(add(api.client, auth, lead) for auth in crowd))
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) == 1, statuses
        assert statuses.count(409) == len(crowd) - 1, statuses
        assert {a.json()["code"] for a in answers if a.status_code == 409} == {"lead_unavailable"}
        async with runtime.transaction(write=False) as session:
            active = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Hold)
                .where(Hold.lead_id == lead.id, Hold.status == HoldStatus.ACTIVE)
            )
        assert active == 1


async def test_a_buyer_is_warned_once_before_a_hold_lapses(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    auth, lead = await holding(api, runtime, clock)
    zone = await api.client.patch(
        "/api/v1/users/me", json={"time_zone": "America/Phoenix"}, headers=auth
    )
    assert zone.status_code == 200, zone.text
    ends = (await cart(api.client, auth))["items"][0]["expires_at"]

    clock.advance(timedelta(minutes=9))
    assert await warn_lapsing(runtime) == 0  # six minutes left
    clock.advance(timedelta(minutes=2))
    assert await warn_lapsing(runtime) == 1  # four minutes left
    assert await warn_lapsing(runtime) == 0  # once

    auth = await signed_in_again(runtime, auth)
    inbox = (await api.client.get("/api/v1/notifications", headers=auth)).json()["items"]
    assert [(n["kind"], n["title"]) for n in inbox] == [
        ("hold_expiring", "A lead in your cart is released in 4 min")
    ]
    # On the buyer's own clock (Phoenix keeps MST all year, UTC-7).
    local = datetime.fromisoformat(ends).astimezone(ZoneInfo("America/Phoenix"))
    assert f"ends at {local:%H:%M} MST." in inbox[0]["body"]
    async with runtime.transaction(write=False) as session:
        mails = list(
            await session.scalars(
                sa.select(OutboundEmail.subject).where(OutboundEmail.kind == "hold_expiring")
            )
        )
    assert mails == ["A lead in your cart is released in 4 min"]


async def test_an_extended_hold_is_announced_again_before_its_new_end(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    pro, lead = await holding(api, runtime, clock, plan="pro")
    clock.advance(timedelta(minutes=11))
    assert await warn_lapsing(runtime) == 1  # four minutes left of the first 15
    pro = await signed_in_again(runtime, pro)
    extended = await api.client.post(
        f"{ITEMS}/{lead.id}/extend", json={"duration": "24h"}, headers=pro
    )
    assert extended.status_code == 200, extended.text

    clock.advance(timedelta(hours=24) - timedelta(minutes=15))  # four minutes left of 24 h
    assert await warn_lapsing(runtime) == 1
    clock.advance(timedelta(minutes=5))
    assert await expire_lapsed(runtime) == 1


async def test_two_warning_runs_at_once_warn_each_hold_once(
    api: Api, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expiry job runs every minute and a run can outlast that (PostgreSQL runs them side
    by side): each hold is announced once, not once per run."""
    await holding(api, runtime, clock)
    clock.advance(timedelta(minutes=11))
    real_notify = cart_service.notify
    both_read = asyncio.Event()
    calls = 0

    async def notify_once_both_have_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            both_read.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both_read.wait(), 1)
        return await real_notify(*args, **kwargs)

    monkeypatch.setattr(cart_service, "notify", notify_once_both_have_read)
    assert sorted(await asyncio.gather(warn_lapsing(runtime), warn_lapsing(runtime))) == [0, 1]
    async with runtime.transaction(write=False) as session:
        warnings = await session.scalar(
            sa.select(sa.func.count()).where(OutboundEmail.kind == "hold_expiring")
        )
    assert warnings == 1


async def test_a_hold_extended_while_its_warning_is_sent_is_warned_again_before_its_new_end(
    api: Api, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pro, lead = await holding(api, runtime, clock, plan="pro")
    clock.advance(timedelta(minutes=11))
    pro = await signed_in_again(runtime, pro)
    real_notify = cart_service.notify
    extending: list[asyncio.Task[httpx.Response]] = []

    async def notify_while_the_buyer_extends(*args: Any, **kwargs: Any) -> Any:
        extending.append(
            asyncio.create_task(
                api.client.post(f"{ITEMS}/{lead.id}/extend", json={"duration": "24h"}, headers=pro)
            )
        )
        await asyncio.sleep(0.3)  # the extension reaches the hold while this run has it
        return await real_notify(*args, **kwargs)

    monkeypatch.setattr(cart_service, "notify", notify_while_the_buyer_extends)
    assert await warn_lapsing(runtime) == 1
    assert (await extending[0]).status_code == 200
    monkeypatch.setattr(cart_service, "notify", real_notify)
    clock.advance(timedelta(hours=24) - timedelta(minutes=15))  # four minutes left of 24 h
    assert await warn_lapsing(runtime) == 1


async def test_a_lapsed_hold_is_in_the_audit_log(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    auth, lead = await holding(api, runtime, clock)
    clock.advance(timedelta(minutes=16))
    assert await expire_lapsed(runtime) == 1
    async with runtime.transaction(write=False) as session:
        events = (
            await session.execute(
                sa.select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.detail)
                .where(AuditEvent.subject_id == str(lead.id))
                .order_by(AuditEvent.created_at)
            )
        ).all()
    assert [(action, actor) for action, actor, _ in events] == [
        ("cart.hold", user_of(auth)),
        ("cart.lapse", None),  # the system let it go
    ]
    assert events[1].detail["buyer"] == str(user_of(auth))


async def test_an_audited_change_keeps_the_longest_request_id_the_api_accepts(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Platforms send ids like `<order uuid>:<attempt>:<step>`; any the API echoes (up to 128
    characters) is kept in the audit trail, not a 500 (it was on PostgreSQL past 64)."""
    (auth,) = await buyers(runtime, 1)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    request_id = f"order-{uuid.uuid4()}:attempt-1:cart-add:" + "a" * 80
    request_id = request_id[:128]
    added = await api.client.post(
        ITEMS, json={"lead_id": str(lead.id)}, headers=auth | {"X-Request-ID": request_id}
    )
    assert added.status_code == 201, added.text
    assert added.headers["X-Request-ID"] == request_id
    async with runtime.transaction(write=False) as session:
        kept = await session.scalar(
            sa.select(AuditEvent.request_id).where(AuditEvent.action == "cart.hold")
        )
    assert kept == request_id


@pytest.mark.no_scheduler
async def test_taking_out_a_hold_that_just_lapsed_is_done_not_refused(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """The buyer asked for the lead out of the cart; it is out (the lapse recorded), so the
    answer is 204, not an error about a hold they no longer want."""
    auth, lead = await holding(api, runtime, clock)
    clock.advance(timedelta(minutes=15, seconds=1))  # before the expiry job has run
    auth = await signed_in_again(runtime, auth)
    removed = await api.client.delete(f"{ITEMS}/{lead.id}", headers=auth)
    assert removed.status_code == 204, removed.text
    assert await lead_status(runtime, lead.id) is LeadStatus.AVAILABLE
    async with runtime.transaction(write=False) as session:
        actions = list(
            await session.scalars(
                sa.select(AuditEvent.action)
                .where(AuditEvent.subject_id == str(lead.id))
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["cart.hold", "cart.lapse"]
    assert (await api.client.delete(f"{ITEMS}/{lead.id}", headers=auth)).status_code == 404
    assert await expire_lapsed(runtime) == 0


async def test_the_expiry_job_leaves_a_hold_extended_while_it_ran(
    api: Api, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job lists lapsed holds, then locks each lead: an extension committed in between
    (its clock read just before the hold lapsed) must stand."""
    pro, lead = await holding(api, runtime, clock, plan="pro")
    clock.advance(timedelta(minutes=15))
    locked_lead = cart_service._locked_lead

    async def extended_first(session: AsyncSession, lead_id: uuid.UUID) -> Lead | None:
        await session.execute(
            sa.update(Hold)
            .where(Hold.lead_id == lead_id)
            .values(expires_at=clock.now() + timedelta(hours=24))
        )
        return await locked_lead(session, lead_id)

    monkeypatch.setattr(cart_service, "_locked_lead", extended_first)
    assert await expire_lapsed(runtime) == 0
    assert await lead_status(runtime, lead.id) is LeadStatus.HELD


async def test_a_removal_retried_with_its_key_is_answered_again_not_refused(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """A buyer whose DELETE's answer was lost retries it: with the same Idempotency-Key the
    first answer comes back (204), not a puzzling `404 not_in_cart`."""
    auth, lead = await holding(api, runtime, clock)
    keyed = auth | {"Idempotency-Key": "remove-1"}
    first = await api.client.delete(f"{ITEMS}/{lead.id}", headers=keyed)
    again = await api.client.delete(f"{ITEMS}/{lead.id}", headers=keyed)
    unkeyed = await api.client.delete(f"{ITEMS}/{lead.id}", headers=auth)
    assert (first.status_code, first.content) == (204, b"")
    assert (again.status_code, again.content) == (204, b"")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert unkeyed.status_code == 404
    assert unkeyed.json()["code"] == "not_in_cart"
    assert await lead_status(runtime, lead.id) is LeadStatus.AVAILABLE
