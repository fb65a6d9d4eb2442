"""Checkout on both dialects: the cart bought whole or not at all, at its locked prices, paid
once whatever is retried, revealed to the buyer, with its receipt; and the races a marketplace
must win (many checkouts of one cart, a hold lapsing as someone else adds the lead)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from aiqleads.audit.models import AuditEvent
from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.checkout.models import Order, Purchase
from aiqleads.demand.models import DemandEvent, DemandKind
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.mail.models import OutboundEmail
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from tests.commerce import (
    add,
    balance,
    buyers,
    cart,
    funded,
    lead_status,
    signed_in_again,
    user_of,
)
from tests.conftest import Api
from tests.ledger.test_ledger import reconcile
from tests.search.factories import add_leads, lead_row

CHECKOUT = "/api/v1/checkout"


async def checkout(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    key: str | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    headers = dict(auth)
    headers["Idempotency-Key"] = key if key is not None else uuid.uuid4().hex
    return await client.post(CHECKOUT, json=body, headers=headers)


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.transaction(write=False) as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def held(api: Api, runtime: Runtime, auth: dict[str, str], *leads: Lead) -> int:
    """Add the leads to the buyer's cart; returns the cart's total."""
    for lead in leads:
        response = await add(api.client, auth, lead)
        assert response.status_code == 201, response.text
    return int((await cart(api.client, auth))["total_cents"])


async def test_checkout_buys_the_cart_reveals_the_leads_and_debits_the_credits(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    exclusive, shared = await add_leads(
        runtime,
        lead_row(clock.now()),
        lead_row(
            clock.now(),
            exclusivity=Exclusivity.SHARED,
            max_sales=3,
            phone="+16025550188",
            first_name="Ana",
            last_name="Ruiz",
        ),
    )
    await recompute(runtime)
    total = await held(api, runtime, buyer, exclusive, shared)
    assert total > 0

    done = await checkout(api.client, buyer, body={"expected_total_cents": total})
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["total_cents"] == total == body["credits_spent"]
    assert body["balance"] == 100_000 - total == await balance(api.client, buyer)
    phones = {i["lead"]["id"]: i["lead"]["contact"]["phone"] for i in body["items"]}
    assert phones == {str(exclusive.id): "+17025550143", str(shared.id): "+16025550188"}
    assert all(i["lead"]["revealed"] for i in body["items"])

    # The exclusive lead is sold; the shared one has two sales left and stays on sale.
    assert await lead_status(runtime, exclusive.id) is LeadStatus.SOLD
    assert await lead_status(runtime, shared.id) is LeadStatus.AVAILABLE
    page = (await api.client.get(f"/api/v1/leads/{shared.id}", headers=buyer)).json()
    assert page["sales_remaining"] == 2
    assert page["contact"]["phone"] == "+16025550188"  # the buyer sees it, unmasked
    assert (await cart(api.client, buyer))["items"] == []

    listed = (await api.client.get("/api/v1/purchases", headers=buyer)).json()["items"]
    assert {p["lead"]["id"] for p in listed} == {str(exclusive.id), str(shared.id)}
    assert {p["order_id"] for p in listed} == {body["order_id"]}
    history = (await api.client.get("/api/v1/credits", headers=buyer)).json()["items"]
    assert ("purchase", -total) in [(e["kind"], e["credits"]) for e in history]

    receipt = await api.client.get(f"/api/v1/billing/invoices/{body['invoice_id']}", headers=buyer)
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["kind"] == "purchase"
    assert receipt.json()["status"] == "paid"
    assert receipt.json()["amount_cents"] == total
    assert len(receipt.json()["lines"]) == 2

    async with runtime.transaction(write=False) as session:
        mails = list(
            await session.scalars(
                sa.select(OutboundEmail).where(OutboundEmail.kind == "purchase_receipt")
            )
        )
        audited = (
            await session.execute(
                sa.select(AuditEvent.subject_id, AuditEvent.actor_id, AuditEvent.request_id).where(
                    AuditEvent.action == "checkout.purchase"
                )
            )
        ).all()
        purchased = list(
            await session.scalars(
                sa.select(DemandEvent.lead_id).where(DemandEvent.kind == DemandKind.PURCHASE)
            )
        )
    assert len(mails) == 1
    assert "+16025550188" in mails[0].body_text  # the receipt delivers the contacts
    assert sorted(a[0] for a in audited) == sorted([str(exclusive.id), str(shared.id)])
    assert {a[1] for a in audited} == {user_of(buyer)}  # who
    assert {a[2] for a in audited} == {done.headers["X-Request-ID"]}  # in which request
    assert sorted(purchased) == sorted([exclusive.id, shared.id])
    assert await reconcile(runtime) == []


async def test_checkout_needs_a_key_and_a_retry_with_it_is_not_charged_again(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    total = await held(api, runtime, buyer, lead)

    keyless = await api.client.post(CHECKOUT, headers=buyer)
    assert keyless.status_code == 400
    assert keyless.json()["code"] == "idempotency_key_required"
    first = await checkout(api.client, buyer, "order-1")
    assert first.status_code == 201, first.text
    again = await checkout(api.client, buyer, "order-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await balance(api.client, buyer) == 100_000 - total
    assert await count(runtime, Order) == 1
    # A new key is a new checkout, of a cart that is empty now.
    empty = await checkout(api.client, buyer, "order-2")
    assert empty.status_code == 422
    assert empty.json()["code"] == "cart_empty"


async def test_twenty_retries_of_one_checkout_at_once_buy_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    leads = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))
    await recompute(runtime)
    total = await held(api, runtime, buyer, *leads)

    answers = await asyncio.gather(*(checkout(api.client, buyer, "same-key") for _ in range(20)))
    assert all(a.status_code in {201, 409} for a in answers), [a.text for a in answers]
    done = [a for a in answers if a.status_code == 201]
    assert done
    assert {a.json()["order_id"] for a in done} == {done[0].json()["order_id"]}
    assert {a.json()["code"] for a in answers if a.status_code == 409} <= {"idempotency_in_flight"}
    assert await balance(api.client, buyer) == 100_000 - total
    assert await count(runtime, Order) == 1


async def test_a_checkout_that_cannot_be_paid_buys_nothing(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    first, second = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))
    await recompute(runtime)
    total = await held(api, runtime, buyer, first, second)
    await funded(runtime, buyer, total - 1)

    refused = await checkout(api.client, buyer)
    assert refused.status_code == 409
    assert refused.json()["code"] == "insufficient_credits"
    assert await balance(api.client, buyer) == total - 1
    assert len((await cart(api.client, buyer))["items"]) == 2  # still held
    assert await lead_status(runtime, first.id) is LeadStatus.HELD
    for model in (Purchase, Order, AuditEvent):
        async with runtime.transaction(write=False) as session:
            rows = await session.scalar(
                sa.select(sa.func.count())
                .select_from(model)
                .where(AuditEvent.action == "checkout.purchase" if model is AuditEvent else True)
            )
        assert rows == 0, model
    async with runtime.transaction(write=False) as session:
        receipts = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboundEmail)
            .where(OutboundEmail.kind == "purchase_receipt")
        )
    assert receipts == 0

    # A cart that changed since the buyer saw it is not bought either.
    await funded(runtime, buyer, 1)
    changed = await checkout(api.client, buyer, body={"expected_total_cents": total + 100})
    assert changed.status_code == 409
    assert changed.json()["code"] == "cart_changed"
    assert changed.json()["total_cents"] == total
    assert (
        await checkout(api.client, buyer, body={"expected_total_cents": total})
    ).status_code == (201)
    assert await balance(api.client, buyer) == 0


async def test_a_lead_taken_off_sale_while_held_stops_the_checkout(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    kept, pulled = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))
    await recompute(runtime)
    await held(api, runtime, buyer, kept, pulled)
    async with runtime.transaction() as session:
        lead = await session.get(Lead, pulled.id)
        assert lead is not None
        lead.status = LeadStatus.WITHDRAWN  # an operator pulled it

    refused = await checkout(api.client, buyer)
    assert refused.status_code == 409
    assert refused.json()["code"] == "lead_unavailable"
    assert refused.json()["lead_id"] == str(pulled.id)
    assert await balance(api.client, buyer) == 100_000
    assert await lead_status(runtime, kept.id) is LeadStatus.HELD


async def test_a_lapsed_hold_is_not_bought(api: Api, runtime: Runtime, clock: FrozenClock) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)
    await held(api, runtime, buyer, lead)
    clock.advance(timedelta(minutes=15))  # the hold's last instant has passed
    buyer = await signed_in_again(runtime, buyer)

    late = await checkout(api.client, buyer)
    assert late.status_code == 422
    assert late.json()["code"] == "cart_empty"
    assert await balance(api.client, buyer) == 100_000
    assert await count(runtime, Purchase) == 0


async def test_a_shared_lead_is_sold_out_after_its_last_sale(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    crowd = await buyers(runtime, 3)
    for auth in crowd:
        await funded(runtime, auth, 100_000)
    lead = (
        await add_leads(runtime, lead_row(clock.now(), exclusivity=Exclusivity.SHARED, max_sales=2))
    )[0]
    await recompute(runtime)
    first, second, third = crowd
    await held(api, runtime, first, lead)
    assert (await checkout(api.client, first)).status_code == 201
    await held(api, runtime, second, lead)
    assert await lead_status(runtime, lead.id) is LeadStatus.HELD
    assert (await checkout(api.client, second)).status_code == 201
    assert await lead_status(runtime, lead.id) is LeadStatus.SOLD
    late = await add(api.client, third, lead)
    assert late.status_code == 409
    assert late.json()["code"] == "lead_unavailable"
    again = await add(api.client, first, lead)
    assert again.json()["code"] == "already_bought"


async def test_fifty_checkouts_of_one_cart_at_once_buy_it_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    leads = await add_leads(runtime, *(lead_row(clock.now()) for _ in range(3)))
    await recompute(runtime)
    total = await held(api, runtime, buyer, *leads)
    await funded(runtime, buyer, total)  # exactly one cart's worth

    answers = await asyncio.gather(*(checkout(api.client, buyer) for _ in range(50)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1, statuses
    assert all(a.status_code < 500 for a in answers)
    assert {a.json()["code"] for a in answers if a.status_code != 201} <= {
        "cart_empty",
        "idempotency_in_flight",
    }
    assert await balance(api.client, buyer) == 0
    assert await count(runtime, Purchase) == 3
    assert await reconcile(runtime) == []


async def test_a_hold_lapsing_as_another_buyer_adds_the_lead_sells_it_at_most_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """The owner checks out and a rival adds the lead at the same instant, on either side of
    the hold's end. Whoever the clock and the lock favour, one of them has it, the lead has
    at most one sale, the ledger balances and the loser's credits are untouched."""
    for instant in (timedelta(minutes=15), timedelta(minutes=15) - timedelta(microseconds=1)):
        for _ in range(3):
            owner, rival = [await funded(runtime, a, 100_000) for a in await buyers(runtime, 2)]
            lead = (await add_leads(runtime, lead_row(clock.now())))[0]
            await recompute(runtime)
            await held(api, runtime, owner, lead)
            start = clock.now()
            clock.advance(instant)
            owner, rival = [await signed_in_again(runtime, a) for a in (owner, rival)]

            bought, taken = await asyncio.gather(
                checkout(api.client, owner), add(api.client, rival, lead)
            )
            lapsed = instant >= timedelta(minutes=15)
            assert bought.status_code == (422 if lapsed else 201), bought.text
            assert taken.status_code == (201 if lapsed else 409), taken.text
            async with runtime.transaction(write=False) as session:
                sales = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(Purchase)
                    .where(Purchase.lead_id == lead.id)
                )
                holds = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(Hold)
                    .where(Hold.lead_id == lead.id, Hold.status == HoldStatus.ACTIVE)
                )
            assert sales == (0 if lapsed else 1)
            assert holds == (1 if lapsed else 0)
            if lapsed:
                assert await balance(api.client, owner) == 100_000
            assert await balance(api.client, rival) == 100_000
            assert await reconcile(runtime) == []
            clock.advance(start - clock.now() + timedelta(hours=1))


async def test_purchases_are_private_to_their_buyer_and_export_as_csv(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    buyer, other = await buyers(runtime, 2)
    await funded(runtime, buyer, 100_000)
    lead = (
        await add_leads(
            runtime,
            lead_row(clock.now(), first_name='=HYPERLINK("http://evil.example","x")'),
        )
    )[0]
    await recompute(runtime)
    await held(api, runtime, buyer, lead)
    bought = (await checkout(api.client, buyer)).json()
    purchase_id = bought["items"][0]["id"]

    mine = await api.client.get(f"/api/v1/purchases/{purchase_id}", headers=buyer)
    assert mine.status_code == 200
    assert mine.json()["lead"]["contact"]["email"] == "maria.delgado@example.com"
    theirs = await api.client.get(f"/api/v1/purchases/{purchase_id}", headers=other)
    assert theirs.status_code == 404
    ops = await api.admin()
    assert (
        await api.client.get(f"/api/v1/purchases/{purchase_id}", headers=ops.auth)
    ).status_code == 200
    assert (await api.client.get("/api/v1/purchases", headers=other)).json()["items"] == []

    exported = await api.client.get("/api/v1/purchases/export.csv", headers=buyer)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["lead_id"] == str(lead.id)
    assert row["phone"] == "+17025550143"  # a phone number is data, not a formula
    assert row["first_name"].startswith("'=HYPERLINK")  # a formula is defused
    assert row["price_cents"] == str(bought["total_cents"])
    nothing = await api.client.get("/api/v1/purchases/export.csv", headers=other)
    assert list(csv.DictReader(io.StringIO(nothing.text))) == []
    assert user_of(buyer) != user_of(other)


async def test_spending_credits_needs_the_buying_scope(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    await recompute(runtime)

    async def key(*scopes: str) -> dict[str, str]:
        made = await api.client.post(
            "/api/v1/api-keys", json={"name": "crm", "scopes": list(scopes)}, headers=agent.auth
        )
        assert made.status_code == 201, made.text
        return {"Authorization": f"Bearer {made.json()['key']}"}

    reader = await key("leads:read")
    assert (await api.client.get(f"/api/v1/leads/{lead.id}", headers=reader)).status_code == 200
    for response in (
        await add(api.client, reader, lead),
        await checkout(api.client, reader),
        await api.client.post(
            "/api/v1/disputes",
            json={"purchase_id": str(uuid.uuid4()), "reason": "fake"},
            headers=reader,
        ),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "insufficient_scope"
    buyer = await key("leads:read", "leads:buy")
    assert (await add(api.client, buyer, lead)).status_code == 201


@pytest.mark.no_scheduler  # no periodic job's statements among the checkout's
async def test_a_checkout_costs_the_same_statements_however_many_leads_it_buys(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """The rows a sale leaves behind are queued and sent together (`kit.writes`): the
    statements a checkout sends do not grow with its cart, and on PostgreSQL they are eight
    (the user, the idempotency lock and lookup, the held leads, the holds, the ledger
    accounts, the debit, and everything else in one)."""
    first, small, large = await buyers(runtime, 3)
    for buyer in (first, small, large):
        await funded(runtime, buyer, 1_000_000)
    leads = await add_leads(runtime, *(lead_row(clock.now()) for _ in range(5)))
    await recompute(runtime)
    await held(api, runtime, first, leads[0])
    # The platform's revenue account opens with the first sale: statements not counted.
    assert (await checkout(api.client, first)).status_code == 201
    await held(api, runtime, small, leads[1])
    await held(api, runtime, large, *leads[2:])

    sent: list[str] = []

    def _sent(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", _sent)
    counts = []
    try:
        for buyer in (small, large):
            await runtime.demand.flush()  # the cart adds' demand events, written beforehand
            await runtime.jobs.wait_idle()
            sent.clear()
            done = await checkout(api.client, buyer)
            assert done.status_code == 201, done.text
            counts.append(len(sent))
    finally:
        sa.event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", _sent)
    assert counts[0] == counts[1], "\n".join(s[:70] for s in sent)
    if runtime.db.dialect == "postgresql":
        assert counts[0] == 8, "\n".join(s[:70] for s in sent)
    assert await count(runtime, Purchase) == 5
    assert await reconcile(runtime) == []
