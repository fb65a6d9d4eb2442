"""Plans and payments without Stripe (the manual provider), on both dialects: a buyer
subscribes or buys credits, gets an open invoice, an operator marks it paid; renewals, grace
periods, cancellation; invoices as HTML and PDF."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from aiqleads.audit.models import AuditEvent
from aiqleads.billing.models import Subscription
from aiqleads.billing.repository import LIVE
from aiqleads.billing.service import Billing, add_month, end_lapsed_grace
from aiqleads.billing.tasks import run_renewals
from aiqleads.kit.clock import FrozenClock
from aiqleads.ledger.models import LedgerTransaction, TransactionKind
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from tests.commerce import add, balance, buyers, signed_in_again
from tests.conftest import Account, Api
from tests.ledger.test_ledger import reconcile
from tests.search.factories import add_leads, lead_row

SUBSCRIBE = "/api/v1/billing/subscribe"

# These tests run the billing jobs themselves (renewals, the event sweeper); the app's
# scheduler must not run them between their steps.
pytestmark = pytest.mark.no_scheduler


async def me(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/billing/subscription", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def mark_paid(api: Api, ops: Account, invoice_id: str) -> httpx.Response:
    return await api.client.post(f"/api/v1/admin/invoices/{invoice_id}/mark-paid", headers=ops.auth)


async def open_invoices(api: Api, ops: Account) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/admin/invoices?status=open", headers=ops.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_plans_are_listed_with_their_rights_and_each_markets_discount(api: Api) -> None:
    response = await api.client.get("/api/v1/plans")
    assert response.status_code == 200, response.text
    body = response.json()
    plans = {p["id"]: p for p in body["plans"]}
    assert list(plans) == ["basic", "pro", "enterprise"]
    assert plans["basic"]["monthly_price_cents"] == 0
    assert plans["pro"]["rate_limit_per_minute"] == 500
    assert plans["pro"]["hold_extensions"] == ["24h", "3d", "7d"]
    assert plans["enterprise"]["custom_rate_limit"] is True
    # The discount comes from each market's pricing configuration.
    assert plans["pro"]["lead_discounts"]["las-vegas"] == 0.10
    assert plans["basic"]["lead_discounts"]["phoenix"] == 0.0
    assert [c["id"] for c in body["credit_packs"]] == ["pack-100", "pack-500", "pack-1000"]
    assert body["payment_provider"] == "manual"
    assert body["credit_value_cents"] == 1


async def test_a_manual_subscription_starts_when_an_operator_marks_it_paid(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    started = await api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent)
    assert started.status_code == 201, started.text
    payment = started.json()
    assert payment["provider"] == "manual"
    assert payment["checkout_url"] is None
    invoice = payment["invoice"]
    assert (invoice["status"], invoice["amount_cents"], invoice["credits"]) == (
        "open",
        19_900,
        21_000,
    )
    assert payment["subscription"]["status"] == "pending"
    assert (await me(api.client, agent))["plan"] == "basic"  # not before it is paid
    assert [i["id"] for i in await open_invoices(api, ops)] == [invoice["id"]]

    paid = await mark_paid(api, ops, invoice["id"])
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    current = await me(api.client, agent)
    assert current["plan"] == "pro"
    assert current["subscription"]["status"] == "active"
    assert current["subscription"]["current_period_end"].startswith(
        add_month(clock.now()).date().isoformat()
    )
    assert await balance(api.client, agent) == 21_000
    again = await mark_paid(api, ops, invoice["id"])
    assert again.status_code == 409
    assert again.json()["code"] == "invoice_paid"
    assert await balance(api.client, agent) == 21_000
    async with runtime.transaction(write=False) as session:
        kinds = list(await session.scalars(sa.select(LedgerTransaction.kind)))
        actions = set(await session.scalars(sa.select(AuditEvent.action)))
    assert kinds == [TransactionKind.SUBSCRIPTION]
    assert {"billing.subscribe", "billing.invoice_paid", "billing.plan_changed"} <= actions
    inbox = (await api.client.get("/api/v1/notifications", headers=agent)).json()["items"]
    assert inbox[0]["title"] == "Payment received: $199.00"

    # A Pro buyer may extend a hold now.
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    assert (await add(api.client, agent, lead)).status_code == 201
    extended = await api.client.post(
        f"/api/v1/cart/items/{lead.id}/extend", json={"duration": "7d"}, headers=agent
    )
    assert extended.status_code == 200, extended.text

    refused = await api.client.post(SUBSCRIBE, json={"plan": "enterprise"}, headers=agent)
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_subscribed"


async def test_a_manual_plan_paid_late_runs_a_whole_month_from_its_payment(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """A bank transfer that arrives 35 days after the subscribe buys a month from then, not
    a period that ended before it was paid (and a renewal billed at once)."""
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    started = await api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent)
    invoice_id = started.json()["invoice"]["id"]
    clock.advance(timedelta(days=35))
    agent = await signed_in_again(runtime, agent)
    ops_auth = await signed_in_again(runtime, ops.auth)
    paid_at = clock.now()
    paid = await api.client.post(f"/api/v1/admin/invoices/{invoice_id}/mark-paid", headers=ops_auth)
    assert paid.status_code == 200, paid.text
    assert paid.json()["period_start"].startswith(paid_at.date().isoformat())
    await run_renewals(runtime)
    current = await me(api.client, agent)
    assert (current["plan"], current["subscription"]["status"]) == ("pro", "active")
    assert current["subscription"]["current_period_end"].startswith(
        add_month(paid_at).date().isoformat()
    )


async def test_a_manual_subscription_renews_monthly_and_falls_back_to_basic_unpaid(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    first = (await api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent)).json()
    assert (await mark_paid(api, ops, first["invoice"]["id"])).status_code == 200
    assert await run_renewals(runtime) == (0, 0)

    clock.advance(timedelta(days=31))
    agent = await signed_in_again(runtime, agent)
    ops = await api.admin("ops2@aiqleads.example.com")
    assert await run_renewals(runtime) == (1, 0)
    assert await run_renewals(runtime) == (0, 0)  # billed once
    renewal = await open_invoices(api, ops)
    assert len(renewal) == 1
    assert renewal[0]["period_start"] == first["invoice"]["period_end"]
    current = await me(api.client, agent)
    assert (current["plan"], current["subscription"]["status"]) == ("pro", "past_due")
    inbox = (await api.client.get("/api/v1/notifications", headers=agent)).json()["items"]
    assert inbox[0]["kind"] == "payment_due"

    assert (await mark_paid(api, ops, renewal[0]["id"])).status_code == 200
    current = await me(api.client, agent)
    assert current["subscription"]["status"] == "active"
    assert current["subscription"]["current_period_end"] == renewal[0]["period_end"]
    assert await balance(api.client, agent) == 2 * 21_000

    # The next month goes unpaid: after the grace period the plan falls back to Basic.
    clock.advance(timedelta(days=31))
    assert await run_renewals(runtime) == (1, 0)
    clock.advance(timedelta(days=runtime.settings.billing_grace_days, seconds=1))
    assert await run_renewals(runtime) == (0, 1)
    agent = await signed_in_again(runtime, agent)
    ops = await api.admin("ops3@aiqleads.example.com")
    current = await me(api.client, agent)
    assert current == {"plan": "basic", "subscription": None}
    assert await open_invoices(api, ops) == []  # the unpaid renewal is void
    assert await balance(api.client, agent) == 2 * 21_000  # credits stay
    assert await reconcile(runtime) == []


async def test_a_renewal_marked_paid_as_its_grace_runs_out_is_one_or_the_other(
    api: Api, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace job ends a plan (subscription, then its open invoices) while an operator
    marks the renewal paid: on PostgreSQL the two took the rows in opposite orders and one
    died of a deadlock. Now one waits for the other: the plan ends and the renewal is void
    (a 409 for the operator), never a 500."""
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    first = (await api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent)).json()
    assert (await mark_paid(api, ops, first["invoice"]["id"])).status_code == 200
    clock.advance(timedelta(days=31))
    assert await run_renewals(runtime) == (1, 0)
    ops = await api.admin("ops2@aiqleads.example.com")
    (renewal,) = await open_invoices(api, ops)
    clock.advance(timedelta(days=runtime.settings.billing_grace_days, seconds=1))
    ops_auth = await signed_in_again(runtime, ops.auth)

    real_end = Billing.end
    marking: list[asyncio.Task[httpx.Response]] = []

    async def end_while_an_operator_marks_it_paid(self: Billing, *args: Any) -> None:
        # The job holds the subscription; the operator's request arrives now.
        marking.append(asyncio.create_task(mark_paid_as(api, ops_auth, renewal["id"])))
        await asyncio.sleep(0.3)
        await real_end(self, *args)

    monkeypatch.setattr(Billing, "end", end_while_an_operator_marks_it_paid)
    assert await end_lapsed_grace(runtime) == 1
    answer = await marking[0]
    assert (answer.status_code, answer.json()["code"]) == (409, "invoice_void"), answer.text
    agent = await signed_in_again(runtime, agent)
    assert (await me(api.client, agent))["plan"] == "basic"


async def mark_paid_as(api: Api, auth: dict[str, str], invoice_id: str) -> httpx.Response:
    return await api.client.post(f"/api/v1/admin/invoices/{invoice_id}/mark-paid", headers=auth)


async def test_a_cancelled_subscription_ends_with_its_period(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    nothing = await api.client.post("/api/v1/billing/cancel", headers=agent)
    assert nothing.status_code == 404
    assert nothing.json()["code"] == "no_subscription"
    first = (await api.client.post(SUBSCRIBE, json={"plan": "enterprise"}, headers=agent)).json()
    assert (await mark_paid(api, ops, first["invoice"]["id"])).status_code == 200
    cancelled = await api.client.post("/api/v1/billing/cancel", headers=agent)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancel_at_period_end"] is True
    assert (await me(api.client, agent))["plan"] == "enterprise"  # until the period ends

    clock.advance(timedelta(days=32))
    agent = await signed_in_again(runtime, agent)
    assert await run_renewals(runtime) == (1, 0)
    assert await me(api.client, agent) == {"plan": "basic", "subscription": None}
    ops = await api.admin("ops2@aiqleads.example.com")
    assert await open_invoices(api, ops) == []  # nothing billed for a cancelled plan


async def test_an_unpaid_subscription_can_be_replaced_or_cancelled_at_once(
    api: Api, runtime: Runtime
) -> None:
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    free = await api.client.post(SUBSCRIBE, json={"plan": "basic"}, headers=agent)
    assert free.status_code == 422
    assert free.json()["code"] == "plan_is_free"
    unknown = await api.client.post(SUBSCRIBE, json={"plan": "platinum"}, headers=agent)
    assert unknown.status_code == 404
    pro = (await api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent)).json()
    ent = (await api.client.post(SUBSCRIBE, json={"plan": "enterprise"}, headers=agent)).json()
    assert [i["id"] for i in await open_invoices(api, ops)] == [ent["invoice"]["id"]]
    void = await mark_paid(api, ops, pro["invoice"]["id"])
    assert void.status_code == 409
    assert void.json()["code"] == "invoice_void"
    cancelled = await api.client.post("/api/v1/billing/cancel", headers=agent)
    assert cancelled.json()["status"] == "canceled"
    assert await open_invoices(api, ops) == []


async def test_concurrent_manual_subscribes_leave_one_subscription_to_pay(
    api: Api, runtime: Runtime
) -> None:
    """Five subscribe requests at once (a double click, two tabs): each answers 201, each
    replacing the one before, and one subscription with one open invoice is left."""
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    answers = await asyncio.gather(
        *(api.client.post(SUBSCRIBE, json={"plan": "pro"}, headers=agent) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    async with runtime.transaction(write=False) as session:
        live = list(
            await session.scalars(sa.select(Subscription).where(Subscription.status.in_(LIVE)))
        )
    assert len(live) == 1
    assert len(await open_invoices(api, ops)) == 1


async def test_a_credit_pack_is_credited_once_paid(api: Api, runtime: Runtime) -> None:
    (agent,) = await buyers(runtime, 1)
    ops = await api.admin()
    missing = await api.client.post("/api/v1/billing/credit-packs/pack-7/checkout", headers=agent)
    assert missing.status_code == 404
    bought = await api.client.post(
        "/api/v1/billing/credit-packs/pack-500/checkout",
        headers={**agent, "Idempotency-Key": "pack-1"},
    )
    assert bought.status_code == 201, bought.text
    invoice = bought.json()["invoice"]
    assert (invoice["amount_cents"], invoice["credits"]) == (50_000, 52_500)
    retried = await api.client.post(
        "/api/v1/billing/credit-packs/pack-500/checkout",
        headers={**agent, "Idempotency-Key": "pack-1"},
    )
    assert retried.json()["invoice"]["id"] == invoice["id"]
    assert await balance(api.client, agent) == 0
    assert (await mark_paid(api, ops, invoice["id"])).status_code == 200
    assert await balance(api.client, agent) == 52_500
    assert (await me(api.client, agent))["plan"] == "basic"
    async with runtime.transaction(write=False) as session:
        kinds = list(await session.scalars(sa.select(LedgerTransaction.kind)))
    assert kinds == [TransactionKind.TOP_UP]


async def test_invoices_are_private_and_render_as_html_and_pdf(api: Api, runtime: Runtime) -> None:
    agent = await api.signup("agent@realty.example.com")
    other = await api.signup("other@realty.example.com")
    renamed = await api.client.patch(
        "/api/v1/users/me", json={"name": "Pat <script>alert(1)</script>"}, headers=agent.auth
    )
    assert renamed.status_code == 200, renamed.text
    invoice = (
        await api.client.post("/api/v1/billing/credit-packs/pack-100/checkout", headers=agent.auth)
    ).json()["invoice"]

    listed = (await api.client.get("/api/v1/billing/invoices", headers=agent.auth)).json()
    assert [i["id"] for i in listed["items"]] == [invoice["id"]]
    assert (await api.client.get("/api/v1/billing/invoices", headers=other.auth)).json()[
        "items"
    ] == []
    html = await api.client.get(invoice["html_url"], headers=agent.auth)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert invoice["number"] in html.text
    # The date and 48 random bits: a busy day's receipts do not collide on the unique number.
    assert re.fullmatch(r"AIQ-\d{8}-[0-9A-F]{12}", invoice["number"])
    assert "$100.00" in html.text
    assert "<script>alert" not in html.text  # escaped
    assert "&lt;script&gt;" in html.text
    pdf = await api.client.get(invoice["pdf_url"], headers=agent.auth)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    for url in (
        invoice["html_url"],
        invoice["pdf_url"],
        f"/api/v1/billing/invoices/{invoice['id']}",
    ):
        assert (await api.client.get(url, headers=other.auth)).status_code == 404
    ops = await api.admin()
    assert (await api.client.get(invoice["pdf_url"], headers=ops.auth)).status_code == 200
    # An API key without account:read (a lead-buying integration) does not read invoices.
    key = await api.client.post(
        "/api/v1/api-keys", json={"name": "crm", "scopes": ["leads:read"]}, headers=agent.auth
    )
    assert key.status_code == 201, key.text
    narrow = {"Authorization": f"Bearer {key.json()['key']}"}
    refused = await api.client.get(invoice["html_url"], headers=narrow)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
