"""Payments through Stripe, on both dialects: Checkout Sessions created through the official
library against a loopback Stripe, the webhook's signature checks, each event applied once
however often and in whatever order it arrives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from aiqleads.audit.models import AuditEvent
from aiqleads.billing.models import EventStatus, PaymentEvent, Provider, Subscription
from aiqleads.billing.repository import LIVE, BillingRepository
from aiqleads.billing.service import add_month
from aiqleads.billing.tasks import run_renewals, sweep_events
from aiqleads.kit.clock import FrozenClock
from aiqleads.ledger.models import LedgerTransaction
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.billing.fake_stripe import (
    SECRET_KEY,
    WEBHOOK,
    WEBHOOK_SECRET,
    FakeStripe,
    deliver,
    event,
    new_id,
    paid_session,
    signed,
    subscription_invoice,
)
from tests.billing.test_manual import me
from tests.commerce import balance, buyers, funded, signed_in_again, user_of
from tests.conftest import TEST_SECRET, Api
from tests.disputes.test_disputes import bought
from tests.ingest.loopback import serve
from tests.ledger.test_ledger import reconcile
from tests.search.factories import add_leads, lead_row

# These tests run the billing jobs themselves (renewals, the event sweeper); the app's
# scheduler must not run them between their steps.
pytestmark = pytest.mark.no_scheduler


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def stripe_api(fake_stripe: tuple[FakeStripe, str]) -> FakeStripe:
    fake = fake_stripe[0]
    fake.calls.clear()
    fake.fail_with = None
    return fake


@pytest.fixture
def settings(database_url: str, fake_stripe: tuple[FakeStripe, str]) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        log_level="WARNING",
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake_stripe[1],
    )


async def settled(runtime: Runtime) -> None:
    await runtime.jobs.wait_idle()


async def events(runtime: Runtime) -> dict[str, EventStatus]:
    async with runtime.transaction(write=False) as session:
        rows = await session.execute(sa.select(PaymentEvent.id, PaymentEvent.status))
    return {event_id: status for event_id, status in rows}


# The webhook's signature -----------------------------------------------------------------


async def test_the_webhook_takes_only_bodies_stripe_signed_recently(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    body = json.dumps(event("customer.created", {"id": "cus_1"}, now)).encode()

    async def post(content: bytes, header: str | bytes | None) -> httpx.Response:
        headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if header is not None:
            headers["Stripe-Signature"] = header
        return await api.client.post(WEBHOOK, content=content, headers=headers)

    good = signed(body, now)
    signature = good.split("v1=")[1]
    t = good.split(",")[0]
    cases = {
        "valid": (body, good, 200),
        "several v1, one right": (body, f"{t},v1={'0' * 64},v1={signature},v0=abc", 200),
        "one byte changed": (body.replace(b"cus_1", b"cus_2"), good, 400),
        "re-serialised JSON": (json.dumps(json.loads(body), indent=2).encode(), good, 400),
        "another secret": (body, signed(body, now, "whsec_other"), 400),
        "stale": (body, signed(body, now - timedelta(seconds=301)), 400),
        "future": (body, signed(body, now + timedelta(seconds=301)), 400),
        "edge of tolerance": (body, signed(body, now - timedelta(seconds=300)), 200),
        "no v1": (body, t, 400),
        "garbage": (body, "nonsense", 400),
        "a digit that is not ASCII": (body, f"t=\u00b2,v1={signature}".encode("latin-1"), 400),
        "a signature that is not ASCII": (body, f"{t},v1=\u00e9".encode("latin-1"), 400),
        "missing": (body, None, 400),
    }
    for name, (content, header, expected) in cases.items():
        response = await post(content, header)
        assert response.status_code == expected, (name, response.text)
        if expected == 400:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] in {
                "invalid_signature",
                "signature_timestamp_out_of_range",
            }, name
    assert list(await events(runtime)) == [json.loads(body)["id"]]  # stored once
    stale = await post(body, signed(body, now - timedelta(seconds=301)))
    assert stale.json()["code"] == "signature_timestamp_out_of_range"

    not_json = b"{not json"
    assert (await post(not_json, signed(not_json, now))).json()["code"] == "invalid_json"
    not_event = json.dumps({"id": 5}).encode()
    assert (await post(not_event, signed(not_event, now))).json()["code"] == "invalid_event"


# Credit packs ----------------------------------------------------------------------------


async def test_a_credit_pack_paid_on_stripe_is_credited_once_however_often_it_is_announced(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    started = await api.client.post("/api/v1/billing/credit-packs/pack-100/checkout", headers=agent)
    assert started.status_code == 201, started.text
    payment = started.json()
    assert payment["provider"] == "stripe"
    assert payment["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    path, form = stripe_api.calls[-1]
    assert path == "/v1/checkout/sessions"
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "10000"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["metadata[invoice_id]"] == payment["invoice"]["id"]
    assert form["client_reference_id"] == str(user_of(agent))
    session_id = payment["checkout_url"].rsplit("/", 1)[1]
    assert await balance(api.client, agent) == 0

    completed = event(
        "checkout.session.completed",
        paid_session(
            session_id,
            {"user_id": str(user_of(agent)), "invoice_id": payment["invoice"]["id"],
             "credit_pack": "pack-100"},
            10_000,
        ),
        clock.now(),
    )  # fmt: skip
    answers = await asyncio.gather(*(deliver(api.client, completed, clock.now()) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True, True]
    await settled(runtime)
    assert await balance(api.client, agent) == 10_000
    again = await deliver(api.client, completed, clock.now())
    assert again.json() == {"received": True, "duplicate": True}
    await settled(runtime)
    assert await balance(api.client, agent) == 10_000
    invoice = (
        await api.client.get(f"/api/v1/billing/invoices/{payment['invoice']['id']}", headers=agent)
    ).json()
    assert invoice["status"] == "paid"
    assert await events(runtime) == {completed["id"]: EventStatus.PROCESSED}
    assert await reconcile(runtime) == []


async def test_a_credit_pack_page_that_closed_unpaid_voids_its_invoice(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    """Stripe closes an unpaid page after 24 h (or an async payment fails): the invoice is
    void, not an `open` one with a dead payment link in the buyer's list and the
    operators' watch list."""
    (agent,) = await buyers(runtime, 1)
    payments = [
        (
            await api.client.post(f"/api/v1/billing/credit-packs/{pack}/checkout", headers=agent)
        ).json()
        for pack in ("pack-100", "pack-100")
    ]
    clock.advance(timedelta(hours=24))
    now = clock.now()
    for payment, kind in zip(
        payments, ("checkout.session.expired", "checkout.session.async_payment_failed"), strict=True
    ):
        session_id = payment["checkout_url"].rsplit("/", 1)[1]
        closed = dict(stripe_api.sessions[session_id], status="expired")
        assert (await deliver(api.client, event(kind, closed, now), now)).status_code == 200
    await settled(runtime)
    agent = await signed_in_again(runtime, agent)
    for payment in payments:
        invoice = (
            await api.client.get(
                f"/api/v1/billing/invoices/{payment['invoice']['id']}", headers=agent
            )
        ).json()
        assert (invoice["status"], invoice["checkout_url"]) == ("void", None)


async def test_a_renewal_paid_from_the_stripe_balance_still_brings_its_credits(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    sub_id, now = new_id("sub"), clock.now()
    first = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    await deliver(api.client, event("invoice.paid", first, now), now)
    renewal = subscription_invoice(
        new_id("in"), sub_id, metadata, 19_900, add_month(now), add_month(add_month(now)),
        "subscription_cycle",
    ) | {"starting_balance": -19_900, "amount_due": 0, "amount_paid": 0}  # fmt: skip
    await deliver(api.client, event("invoice.paid", renewal, now), now)
    await settled(runtime)
    assert await balance(api.client, agent) == 2 * 21_000
    listed = (await api.client.get("/api/v1/billing/invoices", headers=agent)).json()["items"]
    assert [i["amount_cents"] for i in listed] == [19_900, 19_900]


async def _paid_pack(api: Api, runtime: Runtime, clock: FrozenClock) -> tuple[dict[str, str], str]:
    """A buyer who paid $100 for 10,000 credits at Stripe; their PaymentIntent."""
    (agent,) = await buyers(runtime, 1)
    payment = (
        await api.client.post("/api/v1/billing/credit-packs/pack-100/checkout", headers=agent)
    ).json()
    metadata = {
        "user_id": str(user_of(agent)),
        "invoice_id": payment["invoice"]["id"],
        "credit_pack": "pack-100",
    }
    paid = paid_session(payment["checkout_url"].rsplit("/", 1)[1], metadata, 10_000)
    await deliver(api.client, event("checkout.session.completed", paid, clock.now()), clock.now())
    await settled(runtime)
    assert await balance(api.client, agent) == 10_000
    return agent, str(paid["payment_intent"])


def _charge(intent: str, refunded: int) -> dict[str, object]:
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": 10_000,
        "amount_refunded": refunded,
        "currency": "usd",
        "refunded": refunded == 10_000,
        "payment_intent": intent,
    }


async def test_a_pack_refunded_at_stripe_takes_its_credits_back_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Money given back at Stripe (its dashboard) takes back what it bought: a quarter, then
    the rest; each refund once, however often it is announced."""
    agent, intent = await _paid_pack(api, runtime, clock)
    now = clock.now()
    quarter = event("charge.refunded", _charge(intent, 2_500), now)
    for payload in (quarter, quarter, event("charge.refunded", _charge(intent, 2_500), now)):
        await deliver(api.client, payload, now)
    await settled(runtime)
    assert await balance(api.client, agent) == 7_500
    await deliver(api.client, event("charge.refunded", _charge(intent, 10_000), now), now)
    await settled(runtime)
    assert await balance(api.client, agent) == 0
    history = (await api.client.get("/api/v1/credits", headers=agent)).json()["items"]
    assert sorted((h["kind"], h["credits"]) for h in history) == [
        ("reversal", -7_500),
        ("reversal", -2_500),
        ("top_up", 10_000),
    ]
    inbox = (await api.client.get("/api/v1/notifications", headers=agent)).json()["items"]
    assert {n["title"] for n in inbox} >= {
        "Payment refunded: $25.00",
        "Payment refunded: $100.00",  # in all
    }
    assert await reconcile(runtime) == []


async def test_a_lost_chargeback_takes_back_the_credits_not_yet_spent(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent, intent = await _paid_pack(api, runtime, clock)
    (lead,) = await add_leads(runtime, lead_row(clock.now()))
    await funded(runtime, agent, 20_000)  # granted by an operator: not the card's to take
    (purchase,) = await bought(api, runtime, agent, lead)
    left = 30_000 - purchase["price_cents"]
    assert 0 < left < 10_000
    now = clock.now()
    dispute = {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": 10_000,
        "currency": "usd",
        "payment_intent": intent,
        "reason": "fraudulent",
    }
    await deliver(api.client, event("charge.dispute.closed", dispute | {"status": "won"}, now), now)
    await settled(runtime)
    assert await balance(api.client, agent) == left  # won: nothing changes
    await deliver(
        api.client, event("charge.dispute.closed", dispute | {"status": "lost"}, now), now
    )
    await settled(runtime)
    assert await balance(api.client, agent) == 0
    async with runtime.transaction(write=False) as session:
        detail = await session.scalar(
            sa.select(AuditEvent.detail).where(AuditEvent.action == "billing.payment_reversed")
        )
    assert detail is not None
    assert (detail["credits_taken"], detail["credits_already_spent"]) == (left, 10_000 - left)
    assert await reconcile(runtime) == []


async def test_a_session_paid_after_its_request_failed_still_credits_the_buyer(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """The request that opened the session failed after Stripe answered, so no invoice was
    stored; the money arrived all the same."""
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "credit_pack": "pack-500"}
    completed = event(
        "checkout.session.completed", paid_session(new_id("cs"), metadata, 50_000), clock.now()
    )
    assert (await deliver(api.client, completed, clock.now())).status_code == 200
    await settled(runtime)
    assert await balance(api.client, agent) == 52_500
    invoices = (await api.client.get("/api/v1/billing/invoices", headers=agent)).json()["items"]
    assert [(i["status"], i["amount_cents"]) for i in invoices] == [("paid", 50_000)]


async def test_stripe_unreachable_is_a_clear_error_and_stores_nothing(
    api: Api, runtime: Runtime, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    stripe_api.fail_with = 500
    failed = await api.client.post("/api/v1/billing/credit-packs/pack-100/checkout", headers=agent)
    assert failed.status_code == 502
    assert failed.json()["code"] == "payment_provider_unavailable"
    assert (await api.client.get("/api/v1/billing/invoices", headers=agent)).json()["items"] == []


# Subscriptions ---------------------------------------------------------------------------


async def test_a_stripe_subscription_follows_its_events_in_whatever_order_they_come(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    started = await api.client.post(
        "/api/v1/billing/subscribe", json={"plan": "pro"}, headers=agent
    )
    assert started.status_code == 201, started.text
    assert started.json()["invoice"] is None
    _, form = stripe_api.calls[-1]
    assert form["mode"] == "subscription"
    assert form["line_items[0][price_data][recurring][interval]"] == "month"
    assert form["line_items[0][price_data][unit_amount]"] == "19900"
    assert form["subscription_data[metadata][plan]"] == "pro"
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    sub_id, session_id = new_id("sub"), started.json()["checkout_url"].rsplit("/", 1)[1]
    now = clock.now()
    period_end = add_month(now)

    # The first invoice is paid before the checkout's own event arrives.
    first_invoice = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, period_end)
    for payload in (
        event("invoice.paid", first_invoice, now),
        event(
            "checkout.session.completed",
            paid_session(session_id, metadata, 19_900, "subscription", sub_id),
            now,
        ),
    ):
        assert (await deliver(api.client, payload, now)).status_code == 200
    await settled(runtime)
    current = await me(api.client, agent)
    assert current["plan"] == "pro"
    assert current["subscription"]["status"] == "active"
    assert current["subscription"]["provider"] == "stripe"
    assert current["subscription"]["current_period_end"].startswith(period_end.date().isoformat())
    assert await balance(api.client, agent) == 21_000

    # The buyer cancels: Stripe is told, and says so in an update; an older update that
    # arrives after it changes nothing.
    cancelled = await api.client.post("/api/v1/billing/cancel", headers=agent)
    assert cancelled.status_code == 200, cancelled.text
    assert stripe_api.calls[-1] == (f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": "true"})
    later, earlier = now + timedelta(minutes=2), now + timedelta(minutes=1)
    sub = {"id": sub_id, "object": "subscription", "metadata": metadata, "status": "active"}
    for payload in (
        event("customer.subscription.updated", {**sub, "cancel_at_period_end": True}, later),
        event("customer.subscription.updated", {**sub, "cancel_at_period_end": False}, earlier),
    ):
        assert (await deliver(api.client, payload, now)).status_code == 200
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["cancel_at_period_end"] is True

    # The period ends; Stripe deletes the subscription. A late, stale paid invoice still buys
    # its credits but does not revive the plan.
    deleted = event("customer.subscription.deleted", {**sub, "status": "canceled"}, later)
    assert (await deliver(api.client, deleted, now)).status_code == 200
    await settled(runtime)
    assert await me(api.client, agent) == {"plan": "basic", "subscription": None}
    late = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, period_end, period_end)
    assert (await deliver(api.client, event("invoice.paid", late, now), now)).status_code == 200
    await settled(runtime)
    assert (await me(api.client, agent))["plan"] == "basic"
    assert await balance(api.client, agent) == 2 * 21_000
    assert set((await events(runtime)).values()) == {EventStatus.PROCESSED}
    assert await reconcile(runtime) == []


async def test_a_failed_renewal_keeps_the_plan_through_grace_and_a_payment_restores_it(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "plan": "enterprise"}
    sub_id, now = new_id("sub"), clock.now()
    first = subscription_invoice(new_id("in"), sub_id, metadata, 79_900, now, add_month(now))
    await deliver(api.client, event("invoice.paid", first, now), now)
    await settled(runtime)
    assert (await me(api.client, agent))["plan"] == "enterprise"

    renewal = subscription_invoice(
        new_id("in"), sub_id, metadata, 79_900, add_month(now), add_month(add_month(now)),
        "subscription_cycle",
    )  # fmt: skip
    failed = {**renewal, "status": "open", "amount_paid": 0}
    clock.advance(timedelta(minutes=1))
    now = clock.now()
    await deliver(api.client, event("invoice.payment_failed", failed, now), now)
    await settled(runtime)
    current = await me(api.client, agent)
    assert (current["plan"], current["subscription"]["status"]) == ("enterprise", "past_due")
    inbox = (await api.client.get("/api/v1/notifications", headers=agent)).json()["items"]
    assert inbox[0]["kind"] == "payment_due"
    open_invoices = (await api.client.get("/api/v1/billing/invoices", headers=agent)).json()
    assert open_invoices["items"][0]["status"] == "open"
    assert open_invoices["items"][0]["checkout_url"].startswith("https://invoice.stripe.com/")

    await deliver(api.client, event("invoice.paid", renewal, now), now)
    await settled(runtime)
    current = await me(api.client, agent)
    assert current["subscription"]["status"] == "active"
    assert await balance(api.client, agent) == 2 * 90_000
    statuses = [
        i["status"]
        for i in (await api.client.get("/api/v1/billing/invoices", headers=agent)).json()["items"]
    ]
    assert statuses == ["paid", "paid"]
    # Stripe redelivers the old failure after the payment: it changes nothing.
    late = event("invoice.payment_failed", failed, now - timedelta(seconds=30))
    await deliver(api.client, late, now)
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["status"] == "active"
    # A proration invoice (a plan changed in Stripe's dashboard) buys no month of credits.
    proration = {
        **subscription_invoice(new_id("in"), sub_id, metadata, 1_250, now, add_month(now)),
        "billing_reason": "subscription_update",
    }
    await deliver(api.client, event("invoice.paid", proration, now), now)
    await settled(runtime)
    assert await balance(api.client, agent) == 2 * 90_000


async def test_a_renewal_failure_applied_before_the_first_payment_still_stands(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Stripe does not promise order: the renewal's failure arrives (and is applied) first,
    the first month's payment after. Paying the older month does not pay the newer one."""
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    sub_id, now = new_id("sub"), clock.now()
    first = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    renewal = subscription_invoice(
        new_id("in"), sub_id, metadata, 19_900, add_month(now), add_month(add_month(now))
    )
    unpaid = {**renewal, "status": "open", "amount_paid": 0}
    await deliver(api.client, event("invoice.payment_failed", unpaid, now), now)
    await settled(runtime)
    await deliver(api.client, event("invoice.paid", first, now), now)
    await settled(runtime)
    current = await me(api.client, agent)
    assert (current["plan"], current["subscription"]["status"]) == ("pro", "past_due")
    inbox = (await api.client.get("/api/v1/notifications", headers=agent)).json()["items"]
    assert [n["kind"] for n in inbox].count("payment_due") == 1
    # The renewal paid at last: the subscription carries on.
    await deliver(api.client, event("invoice.paid", renewal, now), now)
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["status"] == "active"


async def test_a_stripe_renewal_unpaid_past_grace_ends_the_plan_at_stripe_too(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    sub_id, now = new_id("sub"), clock.now()
    first = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    await deliver(api.client, event("invoice.paid", first, now), now)
    renewal = subscription_invoice(
        new_id("in"), sub_id, metadata, 19_900, add_month(now), add_month(add_month(now))
    )
    unpaid = {**renewal, "status": "open", "amount_paid": 0}
    await deliver(api.client, event("invoice.payment_failed", unpaid, now), now)
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["status"] == "past_due"

    stripe_api.fail_with = 503  # Stripe down when the grace period ends: tried again later
    clock.advance(timedelta(days=runtime.settings.billing_grace_days, seconds=1))
    assert await run_renewals(runtime) == (0, 0)
    stripe_api.fail_with = None
    assert await run_renewals(runtime) == (0, 1)
    assert stripe_api.calls[-1][0] == f"/v1/subscriptions/{sub_id}"  # cancelled at Stripe
    agent = await signed_in_again(runtime, agent)
    assert await me(api.client, agent) == {"plan": "basic", "subscription": None}


async def test_a_second_stripe_subscription_replaces_the_first_at_stripe_too(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    """Two checkout pages opened, both paid: the buyer keeps the newer plan, and the older
    subscription is cancelled at Stripe, so it is not charged again."""
    (agent,) = await buyers(runtime, 1)
    now = clock.now()
    older, newer = new_id("sub"), new_id("sub")
    for sub_id, plan in ((older, "pro"), (newer, "enterprise")):
        metadata = {"user_id": str(user_of(agent)), "plan": plan}
        paid = subscription_invoice(new_id("in"), sub_id, metadata, 100, now, add_month(now))
        await deliver(api.client, event("invoice.paid", paid, now), now)
        await settled(runtime)
    assert (await me(api.client, agent))["plan"] == "enterprise"
    assert f"/v1/subscriptions/{older}" in [path for path, _ in stripe_api.calls]
    assert f"/v1/subscriptions/{newer}" not in [path for path, _ in stripe_api.calls]


async def test_a_pending_stripe_subscription_replaced_by_a_new_subscribe_ends_at_stripe_too(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    """A subscription whose first payment has not gone through (Stripe: incomplete) is
    replaced when the buyer subscribes again: cancelled at Stripe as well as here, or Stripe
    would go on billing a plan the buyer never gets."""
    (agent,) = await buyers(runtime, 1)
    now = clock.now()
    pending = new_id("sub")
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    created = {
        "id": pending,
        "object": "subscription",
        "metadata": metadata,
        "status": "incomplete",
    }
    answer = await deliver(api.client, event("customer.subscription.created", created, now), now)
    assert answer.status_code == 200
    await settled(runtime)

    _session_of(await _subscribe(api, agent, "enterprise"))
    assert f"/v1/subscriptions/{pending}" in [path for path, _ in stripe_api.calls]
    async with runtime.transaction(write=False) as session:
        live = await BillingRepository(session).live_subscription(user_of(agent))
    assert live is None  # the new plan starts when its page is paid


async def _subscribe(api: Api, agent: dict[str, str], plan: str) -> httpx.Response:
    return await api.client.post("/api/v1/billing/subscribe", json={"plan": plan}, headers=agent)


def _session_of(started: httpx.Response) -> str:
    assert started.status_code == 201, started.text
    return str(started.json()["checkout_url"].rsplit("/", 1)[1])


async def test_a_new_payment_page_closes_the_last_so_only_one_can_be_paid(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    """A buyer who opens the subscription page twice (two tabs, a changed mind) can pay only
    the newest: each earlier one is expired at Stripe first."""
    (agent,) = await buyers(runtime, 1)
    first = _session_of(await _subscribe(api, agent, "pro"))
    second = _session_of(await _subscribe(api, agent, "enterprise"))
    assert stripe_api.sessions[first]["status"] == "expired"
    assert stripe_api.sessions[second]["status"] == "open"
    expired = [path for path, _ in stripe_api.calls if path.endswith("/expire")]
    assert expired == [f"/v1/checkout/sessions/{first}/expire"]

    # A page Stripe expired by itself (after 24 h) is simply replaced.
    stripe_api.sessions[second]["status"] = "expired"
    third = _session_of(await _subscribe(api, agent, "pro"))
    assert stripe_api.sessions[third]["status"] == "open"

    # A page closed by its own event is not asked about again.
    now = clock.now()
    expired_event = dict(stripe_api.sessions[third], status="expired")
    await deliver(api.client, event("checkout.session.expired", expired_event, now), now)
    await settled(runtime)
    stripe_api.calls.clear()
    _session_of(await _subscribe(api, agent, "pro"))
    assert [path for path, _ in stripe_api.calls] == ["/v1/checkout/sessions"]


async def test_a_page_paid_before_its_events_arrive_blocks_a_second_subscription(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    first = _session_of(await _subscribe(api, agent, "pro"))
    stripe_api.pay(first)  # paid at Stripe; no event has reached us yet

    again = await _subscribe(api, agent, "enterprise")
    assert again.status_code == 409
    assert again.json()["code"] == "subscription_paid"
    assert "Pro" in again.json()["detail"]
    assert [path for path, _ in stripe_api.calls].count("/v1/checkout/sessions") == 1

    # The events arrive: the buyer is on Pro, and a further subscribe says so.
    now = clock.now()
    sub_id, metadata = new_id("sub"), {"user_id": str(user_of(agent)), "plan": "pro"}
    paid = paid_session(first, metadata, 19_900, mode="subscription", subscription=sub_id)
    invoice = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    for payload in (
        event("checkout.session.completed", paid, now),
        event("invoice.paid", invoice, now),
    ):
        await deliver(api.client, payload, now)
    await settled(runtime)
    assert (await me(api.client, agent))["plan"] == "pro"
    assert (await _subscribe(api, agent, "enterprise")).json()["code"] == "already_subscribed"


async def test_a_paid_first_payment_is_never_cancelled_by_subscribing_or_cancelling_again(
    api: Api, runtime: Runtime, clock: FrozenClock, stripe_api: FakeStripe
) -> None:
    """Stripe creates the subscription `incomplete` (pending here) a moment before the
    payment's own events: a second subscribe or a cancel in that moment must not end, at
    Stripe, the subscription the buyer has just paid for."""
    (agent,) = await buyers(runtime, 1)
    page = _session_of(await _subscribe(api, agent, "pro"))
    stripe_api.pay(page)
    now = clock.now()
    sub_id, metadata = new_id("sub"), {"user_id": str(user_of(agent)), "plan": "pro"}
    created = {"id": sub_id, "object": "subscription", "metadata": metadata}
    await deliver(
        api.client,
        event("customer.subscription.created", created | {"status": "incomplete"}, now),
        now,
    )
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["status"] == "pending"

    again = await _subscribe(api, agent, "enterprise")
    cancelled = await api.client.post("/api/v1/billing/cancel", headers=agent)
    assert (again.status_code, again.json()["code"]) == (409, "subscription_paid")
    assert (cancelled.status_code, cancelled.json()["code"]) == (409, "subscription_paid")
    assert f"/v1/subscriptions/{sub_id}" not in [path for path, _ in stripe_api.calls]
    assert (await me(api.client, agent))["subscription"]["status"] == "pending"


async def test_stripe_unreachable_while_closing_the_last_page_opens_no_new_one(
    api: Api, runtime: Runtime, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    first = _session_of(await _subscribe(api, agent, "pro"))
    stripe_api.fail_with = 500
    failed = await _subscribe(api, agent, "pro")
    assert failed.status_code == 502
    assert failed.json()["code"] == "payment_provider_unavailable"
    stripe_api.fail_with = None
    assert stripe_api.sessions[first]["status"] == "open"
    second = _session_of(await _subscribe(api, agent, "pro"))  # Stripe is back
    assert stripe_api.sessions[first]["status"] == "expired"
    assert stripe_api.sessions[second]["status"] == "open"


async def test_concurrent_subscribes_leave_one_payable_page(
    api: Api, runtime: Runtime, stripe_api: FakeStripe
) -> None:
    (agent,) = await buyers(runtime, 1)
    answers = await asyncio.gather(*(_subscribe(api, agent, "pro") for _ in range(5)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    opened = {_session_of(a) for a in answers}
    assert len(opened) == 5
    assert sorted(stripe_api.sessions[sid]["status"] for sid in opened) == ["expired"] * 4 + [
        "open"
    ]


async def test_an_event_that_comes_before_what_it_needs_waits_and_is_applied_later(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """An update of a subscription nobody described yet (no metadata) cannot be applied; it
    stays pending and the sweeper applies it once the subscription is known."""
    (agent,) = await buyers(runtime, 1)
    metadata = {"user_id": str(user_of(agent)), "plan": "pro"}
    sub_id, now = new_id("sub"), clock.now()
    early = event(
        "customer.subscription.updated",
        {"id": sub_id, "object": "subscription", "status": "past_due"},
        now + timedelta(seconds=5),
    )
    await deliver(api.client, early, now)
    await settled(runtime)
    stored = await events(runtime)
    assert stored[early["id"]] is EventStatus.PENDING

    first = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    await deliver(api.client, event("invoice.paid", first, now), now)
    await settled(runtime)
    assert (await me(api.client, agent))["subscription"]["status"] == "active"
    clock.advance(timedelta(minutes=1))
    assert await sweep_events(runtime) == 1
    assert (await events(runtime))[early["id"]] is EventStatus.PROCESSED
    assert (await me(api.client, agent))["subscription"]["status"] == "past_due"
    async with runtime.transaction(write=False) as session:
        grants = await session.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction))
    assert grants == 1


def test_production_refuses_a_stripe_key_without_a_webhook_secret() -> None:
    from aiqleads.settings import SettingsError

    settings = Settings(
        env="production",
        database_url="postgresql+asyncpg://db/aiqleads",
        secret_key="a-long-random-production-secret-0123456789abcdef",
        public_url="https://aiqleads.example.com",
        stripe_secret_key=SECRET_KEY,
    )
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        settings.check_production()


async def test_two_events_of_a_new_subscription_at_once_make_one_live_subscription(
    api: Api,
    runtime: Runtime,
    clock: FrozenClock,
    stripe_api: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """checkout.session.completed and invoice.paid arrive within moments and are applied at
    once. The second can look its subscription up before the first commits the row, then find
    that row as the buyer's live subscription: it is the same subscription, not an older one
    to replace (which ended it and left the buyer on Pro with nothing live)."""
    (agent,) = await buyers(runtime, 1)
    first = _session_of(await _subscribe(api, agent, "pro"))
    stripe_api.pay(first)
    now = clock.now()
    sub_id, metadata = new_id("sub"), {"user_id": str(user_of(agent)), "plan": "pro"}
    paid = paid_session(first, metadata, 19_900, mode="subscription", subscription=sub_id)
    await deliver(api.client, event("checkout.session.completed", paid, now), now)
    await settled(runtime)

    # The race's window, made certain: the lookup by Stripe's id misses once, as it does
    # when the other event's row is not committed yet.
    lookup = BillingRepository.subscription_by_ref
    missed: list[str] = []

    async def late(repo: BillingRepository, provider: Provider, ref: str) -> Subscription | None:
        if not missed:
            missed.append(ref)
            return None
        return await lookup(repo, provider, ref)

    monkeypatch.setattr(BillingRepository, "subscription_by_ref", late)
    invoice = subscription_invoice(new_id("in"), sub_id, metadata, 19_900, now, add_month(now))
    await deliver(api.client, event("invoice.paid", invoice, now), now)
    await settled(runtime)

    assert missed == [sub_id]
    assert (await me(api.client, agent))["plan"] == "pro"
    async with runtime.transaction(write=False) as session:
        rows = (
            await session.execute(sa.select(Subscription.provider_ref, Subscription.status))
        ).all()
    assert [(ref, status.value) for ref, status in rows if status in LIVE] == [(sub_id, "active")]
    assert (await _subscribe(api, agent, "enterprise")).json()["code"] == "already_subscribed"
