"""Disputes on both dialects: a buyer disputes a bad lead within the window; evidence settles
clear cases at once (within an allowance over the window's purchases), operators decide the
rest; a refund returns
exactly what was paid, once, takes the lead back and withdraws it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from aiqleads.audit.models import AuditEvent
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead, LeadMatchKey
from aiqleads.leads.repository import COMPARE_COLUMNS
from aiqleads.ledger.models import AccountKind, LedgerAccount, LedgerTransaction, TransactionKind
from aiqleads.notifications.models import Notification
from aiqleads.pricing.service import recompute
from aiqleads.quality.dedup import match_keys
from aiqleads.runtime import Runtime
from tests.checkout.test_checkout import checkout
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
from tests.conftest import DIALECTS, Account, Api
from tests.ledger.test_ledger import reconcile
from tests.search.factories import add_leads, lead_row

DISPUTES = "/api/v1/disputes"
TOLL_FREE = "+18005550199"


async def bought(
    api: Api, runtime: Runtime, auth: dict[str, str], *leads: Lead
) -> list[dict[str, Any]]:
    """The buyer holds and checks out `leads`; returns the purchases."""
    await recompute(runtime)
    for lead in leads:
        assert (await add(api.client, auth, lead)).status_code == 201
    done = await checkout(api.client, auth)
    assert done.status_code == 201, done.text
    items: list[dict[str, Any]] = done.json()["items"]
    return items


async def dispute(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    purchase: dict[str, Any],
    reason: str,
    note: str = "",
) -> httpx.Response:
    return await client.post(
        DISPUTES, json={"purchase_id": purchase["id"], "reason": reason, "note": note}, headers=auth
    )


async def decide(api: Api, ops: Account, dispute_id: str, decision: str) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/admin/disputes/{dispute_id}/decision",
        json={"decision": decision, "reason": "checked the call recording"},
        headers=ops.auth,
    )


async def refunds(runtime: Runtime) -> int:
    async with runtime.transaction(write=False) as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.kind == TransactionKind.REFUND)
            )
            or 0
        )


async def test_a_clear_dispute_is_refunded_at_once_and_the_lead_withdrawn(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    lead = (await add_leads(runtime, lead_row(clock.now(), phone=TOLL_FREE)))[0]
    (purchase,) = await bought(api, runtime, buyer, lead)
    paid = purchase["price_cents"]
    assert await balance(api.client, buyer) == 100_000 - paid

    filed = await dispute(api.client, buyer, purchase, "wrong_number", "an 800 number")
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert (body["status"], body["auto_decided"], body["refund_cents"]) == ("approved", True, paid)
    phone = next(f for f in body["evidence"] if f["check"] == "phone")
    assert phone["supports_claim"] is True
    assert "toll_free" in phone["detail"]
    assert await balance(api.client, buyer) == 100_000
    assert await lead_status(runtime, lead.id) is LeadStatus.WITHDRAWN

    # The buyer has the money back and no longer the lead's details.
    listed = (await api.client.get("/api/v1/purchases", headers=buyer)).json()["items"]
    assert listed[0]["status"] == "refunded"
    assert listed[0]["lead"]["revealed"] is False
    assert listed[0]["lead"]["contact"]["phone"] is None
    assert (await api.client.get(f"/api/v1/leads/{lead.id}", headers=buyer)).status_code == 404
    history = (await api.client.get("/api/v1/credits", headers=buyer)).json()["items"]
    assert ("refund", paid) in [(e["kind"], e["credits"]) for e in history]
    inbox = (await api.client.get("/api/v1/notifications", headers=buyer)).json()["items"]
    assert "dispute_refunded" in [n["kind"] for n in inbox]
    assert not any(TOLL_FREE in n["body"] for n in inbox)  # the app keeps no contact details

    again = await dispute(api.client, buyer, purchase, "fake")
    assert again.status_code == 409
    assert again.json()["code"] == "already_disputed"
    ops = await api.admin()
    sources = (await api.client.get("/api/v1/admin/disputes/sources", headers=ops.auth)).json()
    assert sources == [
        {"source": "demo-webform", "sold": 1, "disputed": 1, "refunded": 1, "refund_rate": 1.0}
    ]
    async with runtime.transaction(write=False) as session:
        actions = list(await session.scalars(sa.select(AuditEvent.action)))
    assert {"disputes.file", "disputes.approve"} <= set(actions)
    assert await reconcile(runtime) == []


async def test_an_unclear_dispute_waits_for_an_operator(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    buyer, other = await buyers(runtime, 2)
    await funded(runtime, buyer, 100_000)
    first, second = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))
    purchases = await bought(api, runtime, buyer, first, second)
    spent = 100_000 - await balance(api.client, buyer)

    # A valid mobile number: the evidence does not confirm "wrong number", nor "not the owner".
    filed = [
        (await dispute(api.client, buyer, p, reason)).json()
        for p, reason in zip(purchases, ("wrong_number", "not_the_owner"), strict=True)
    ]
    assert [d["status"] for d in filed] == ["open", "open"]
    assert await balance(api.client, buyer) == 100_000 - spent
    assert (await api.client.get(f"{DISPUTES}/{filed[0]['id']}", headers=other)).status_code == 404
    stranger = await dispute(api.client, other, purchases[0], "fake")
    assert stranger.status_code == 404

    ops = await api.admin()
    queue = (await api.client.get("/api/v1/admin/disputes", headers=ops.auth)).json()["items"]
    assert sorted(d["id"] for d in queue) == sorted(d["id"] for d in filed)
    approve, reject = await asyncio.gather(
        decide(api, ops, filed[0]["id"], "approve"), decide(api, ops, filed[1]["id"], "reject")
    )
    assert approve.status_code == 200, approve.text
    assert approve.json()["status"] == "approved"
    assert reject.json()["status"] == "rejected"
    refunded = purchases[0]["price_cents"]
    assert await balance(api.client, buyer) == 100_000 - spent + refunded
    rejected_lead = uuid.UUID(purchases[1]["lead"]["id"])
    assert await lead_status(runtime, rejected_lead) is LeadStatus.SOLD  # rejected: stays sold
    assert (await api.client.get("/api/v1/admin/disputes", headers=ops.auth)).json()["items"] == []
    twice = await decide(api, ops, filed[0]["id"], "approve")
    assert twice.status_code == 409
    assert twice.json()["code"] == "decided"
    mine = (await api.client.get(DISPUTES, headers=buyer)).json()["items"]
    assert {d["status"] for d in mine} == {"approved", "rejected"}
    assert await refunds(runtime) == 1
    assert await reconcile(runtime) == []


async def test_a_note_with_a_nul_character_is_refused(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    (lead,) = await add_leads(runtime, lead_row(clock.now()))
    (purchase,) = await bought(api, runtime, buyer, lead)
    refused = await dispute(api.client, buyer, purchase, "fake", note="a\x00b")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "note"]
    assert (await dispute(api.client, buyer, purchase, "fake", note="ab")).status_code == 201


async def test_an_operator_approving_twice_at_once_refunds_once(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    lead = (await add_leads(runtime, lead_row(clock.now())))[0]
    (purchase,) = await bought(api, runtime, buyer, lead)
    filed = (await dispute(api.client, buyer, purchase, "not_the_owner")).json()
    ops = await api.admin()
    answers = await asyncio.gather(*(decide(api, ops, filed["id"], "approve") for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    assert await refunds(runtime) == 1
    assert await balance(api.client, buyer) == 100_000


async def test_disputes_close_with_the_window_and_clear_ones_are_capped(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    leads = await add_leads(
        runtime,
        *(lead_row(clock.now(), phone=TOLL_FREE if i < 2 else "+17025550143") for i in range(11)),
    )
    purchases = {p["lead"]["id"]: p for p in await bought(api, runtime, buyer, *leads)}
    bad = [purchases[str(lead.id)] for lead in leads[:2]]
    # Eleven purchases within the window allow ceil(11 x 10 %) = 2 automatic refunds.
    first = (await dispute(api.client, buyer, bad[0], "disconnected")).json()
    assert first["status"] == "approved"
    second = (await dispute(api.client, buyer, bad[1], "disconnected")).json()
    assert second["status"] == "approved"

    clock.advance(timedelta(days=runtime.settings.dispute_window_days, seconds=1))
    buyer = await signed_in_again(runtime, buyer)
    late = await dispute(api.client, buyer, purchases[str(leads[2].id)], "fake")
    assert late.status_code == 422
    assert late.json()["code"] == "dispute_window_closed"


async def test_the_allowance_sends_further_clear_disputes_to_an_operator(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    leads = await add_leads(runtime, *(lead_row(clock.now(), phone=TOLL_FREE) for _ in range(3)))
    purchases = await bought(api, runtime, buyer, *leads)
    # Three purchases allow ceil(3 x 10 %) = 1 automatic refund.
    answers = [(await dispute(api.client, buyer, p, "wrong_number")).json() for p in purchases]
    assert [a["status"] for a in answers] == ["approved", "open", "open"]
    allowance = [f for f in answers[1]["evidence"] if f["check"] == "allowance"]
    assert (
        "1 of the 1 automatic refunds your purchases of the last 7 days allow are used"
        in (allowance[0]["detail"])
    )


async def test_evidence_confirms_duplicates_and_missing_consent(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    original, twin, unconsented = await add_leads(
        runtime,
        lead_row(clock.now()),
        lead_row(clock.now(), first_name="Mary", street_number="4502"),
        lead_row(clock.now(), consent_captured_at=None, consent_text=None),
    )
    async with runtime.transaction() as session:  # the same phone: ingestion's blocking key
        session.add_all(
            [
                LeadMatchKey(key="p:+17025550143", lead_id=original.id),
                LeadMatchKey(key="p:+17025550143", lead_id=twin.id),
            ]
        )
    (first,) = await bought(api, runtime, buyer, original)
    clock.advance(timedelta(minutes=1))
    buyer = await signed_in_again(runtime, buyer)
    second, third = await bought(api, runtime, buyer, twin, unconsented)
    by_lead = {p["lead"]["id"]: p for p in (first, second, third)}

    duplicate = (await dispute(api.client, buyer, by_lead[str(twin.id)], "duplicate")).json()
    assert duplicate["status"] == "approved"
    found = next(f for f in duplicate["evidence"] if f["check"] == "duplicate")
    assert str(original.id) in found["detail"]
    # The original itself is no duplicate of anything bought before it.
    ops = await api.admin()
    no_consent = (
        await dispute(api.client, buyer, by_lead[str(unconsented.id)], "no_consent")
    ).json()
    assert no_consent["status"] == "open"  # the three purchases' one automatic refund is used
    assert next(f for f in no_consent["evidence"] if f["check"] == "consent")["supports_claim"]
    original_claim = (
        await dispute(api.client, buyer, by_lead[str(original.id)], "duplicate")
    ).json()
    assert not next(f for f in original_claim["evidence"] if f["check"] == "duplicate")[
        "supports_claim"
    ]
    assert (await decide(api, ops, no_consent["id"], "approve")).status_code == 200


async def blocked(runtime: Runtime, *leads: Lead) -> None:
    """Store the blocking keys ingestion stores for each lead (quality.dedup.match_keys)."""
    async with runtime.transaction() as session:
        for lead in leads:
            fields = {column: getattr(lead, column) for column in COMPARE_COLUMNS}
            session.add_all([LeadMatchKey(key=k, lead_id=lead.id) for k in match_keys(fields)])


async def test_neighbours_and_a_household_are_not_duplicates(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """A shared building, or a phone and e-mail shared within a household, is only a reason
    to compare: de-duplication does not call two different people one, nor do disputes."""
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    maria, neighbour, husband = await add_leads(
        runtime,
        lead_row(clock.now()),  # Maria Delgado, 4500 W Sahara Ave Apt 210
        lead_row(
            clock.now(),
            first_name="John",
            last_name="Okafor",
            phone="+17025550177",
            email="john.okafor@example.com",
            unit_number="512",
            address_line2="APT 512",
            address="4500 W SAHARA AVE APT 512, LAS VEGAS, NV 89102",
            parcel_number="162-05-110-099",
        ),
        lead_row(clock.now(), first_name="Carlos"),  # her phone, e-mail and flat
    )
    await blocked(runtime, maria, neighbour, husband)
    await bought(api, runtime, buyer, maria)
    clock.advance(timedelta(minutes=1))
    buyer = await signed_in_again(runtime, buyer)
    later = await bought(api, runtime, buyer, neighbour, husband)

    for purchase in later:
        filed = (await dispute(api.client, buyer, purchase, "duplicate")).json()
        found = next(f for f in filed["evidence"] if f["check"] == "duplicate")
        assert found["supports_claim"] is False, found
        assert str(maria.id) not in found["detail"]
        assert filed["status"] == "open"
        assert filed["refund_cents"] == 0


async def test_a_lead_without_a_phone_is_no_proof_it_is_fake_or_disconnected(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Ingestion accepts a lead with an e-mail and no phone; a missing phone proves nothing."""
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    leads = await add_leads(
        runtime, lead_row(clock.now(), phone=None), lead_row(clock.now(), phone=None)
    )
    purchases = await bought(api, runtime, buyer, *leads)
    start = await balance(api.client, buyer)
    for purchase, reason in zip(purchases, ("fake", "disconnected"), strict=True):
        filed = (await dispute(api.client, buyer, purchase, reason)).json()
        phone = next(f for f in filed["evidence"] if f["check"] == "phone")
        assert (phone["supports_claim"], phone["detail"]) == (
            False,
            "the lead has no phone number",
        )
        assert filed["status"] == "open", filed["evidence"]
    assert await balance(api.client, buyer) == start


async def test_the_allowance_counts_the_purchases_that_can_still_be_disputed(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Not the calendar month's: ten leads bought at 23:30 UTC on 31 March still allow
    ceil(10 x 10 %) = 1 automatic refund on 1 April, and that refund counts for the window."""
    clock.advance(datetime(2026, 3, 31, 23, 30, tzinfo=UTC) - clock.now())
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    leads = await add_leads(
        runtime,
        *(lead_row(clock.now(), phone=TOLL_FREE) for _ in range(2)),
        *(lead_row(clock.now()) for _ in range(8)),
    )
    by_lead = {p["lead"]["id"]: p for p in await bought(api, runtime, buyer, *leads)}
    clock.advance(timedelta(hours=1))  # 1 April, 00:30 UTC
    buyer = await signed_in_again(runtime, buyer)

    first = (await dispute(api.client, buyer, by_lead[str(leads[0].id)], "wrong_number")).json()
    assert first["status"] == "approved", first["evidence"]
    clock.advance(timedelta(days=2))
    buyer = await signed_in_again(runtime, buyer)
    second = (await dispute(api.client, buyer, by_lead[str(leads[1].id)], "wrong_number")).json()
    assert second["status"] == "open"
    allowance = next(f for f in second["evidence"] if f["check"] == "allowance")
    assert "1 of the 1 automatic refunds" in allowance["detail"]


async def test_a_refunded_dispute_does_not_show_the_leads_contact_details(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """A refund masks the lead again; the dispute's evidence, readable for as long as the
    dispute exists, names what it checked without the phone, e-mail or name themselves."""
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    (lead,) = await add_leads(
        runtime,
        lead_row(clock.now(), phone=TOLL_FREE, email="maria.delgado@gmail.com", last_name="Zzzyx"),
    )
    (purchase,) = await bought(api, runtime, buyer, lead)
    filed = (await dispute(api.client, buyer, purchase, "wrong_number")).json()
    assert filed["status"] == "approved"
    listed = (await api.client.get("/api/v1/purchases", headers=buyer)).json()["items"][0]
    assert listed["lead"]["contact"]["email"] is None

    shown = await api.client.get(f"{DISPUTES}/{filed['id']}", headers=buyer)
    details = {f["check"]: f["detail"] for f in shown.json()["evidence"]}
    assert details["phone"] == "the phone number is a toll_free number"
    assert details["email"] == "the e-mail address is valid"
    assert details["fraud"] == "the name looks made up"
    ops = await api.admin()
    readers = [
        (f"{DISPUTES}/{filed['id']}", buyer),
        (DISPUTES, buyer),
        ("/api/v1/admin/disputes?status=approved", ops.auth),
    ]
    for url, auth in readers:
        text = (await api.client.get(url, headers=auth)).text
        for value in (TOLL_FREE, "maria.delgado@gmail.com", "Zzzyx"):
            assert value not in text, (url, value)


async def test_refunding_a_shared_lead_takes_it_out_of_other_carts(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    buyer, other = await buyers(runtime, 2)
    await funded(runtime, buyer, 100_000)
    lead = (
        await add_leads(
            runtime,
            lead_row(clock.now(), phone=TOLL_FREE, exclusivity=Exclusivity.SHARED, max_sales=3),
        )
    )[0]
    (purchase,) = await bought(api, runtime, buyer, lead)
    assert (await add(api.client, other, lead)).status_code == 201
    filed = (await dispute(api.client, buyer, purchase, "wrong_number")).json()
    assert filed["status"] == "approved"
    assert await lead_status(runtime, lead.id) is LeadStatus.WITHDRAWN
    assert (await cart(api.client, other))["items"] == []
    refused = await add(api.client, other, lead)
    assert refused.json()["code"] == "lead_unavailable"
    assert uuid.UUID(filed["id"])


# It stops a PostgreSQL transaction half way on a row lock the test holds.
@pytest.mark.parametrize("database_url", [d for d in DIALECTS if d == "postgresql"], indirect=True)
async def test_a_dispute_refunded_while_the_buyer_is_credited_does_not_deadlock(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """A credit grant locks the buyer's credits, then adds rows that key-share-lock the
    buyer's user row; a refund on dispute needs the same credits row. Disputes must not lock
    the user row first, or the two wait on each other."""
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    lead = (await add_leads(runtime, lead_row(clock.now(), phone=TOLL_FREE)))[0]
    (purchase,) = await bought(api, runtime, buyer, lead)
    owner = user_of(buyer)

    async def refund_waits() -> bool:
        async with runtime.db.engine.connect() as watch:
            waiting = await watch.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE 'UPDATE ledger_accounts%'"
                )
            )
        return bool(waiting)

    async with runtime.db.engine.connect() as grant:  # a grant, half way
        await grant.begin()
        await grant.execute(
            sa.select(LedgerAccount.id)
            .where(LedgerAccount.owner == str(owner), LedgerAccount.kind == AccountKind.CREDITS)
            .with_for_update()
        )
        filed = asyncio.create_task(dispute(api.client, buyer, purchase, "wrong_number"))
        for _ in range(300):
            if await refund_waits():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the refund never reached the credits row")
        await grant.execute(  # the grant tells the buyer: a row that refers to the user
            sa.insert(Notification).values(
                id=uuid.uuid4(),
                user_id=owner,
                kind="credits_granted",
                title="Credits added",
                body="",
                data={},
                created_at=clock.now(),
            )
        )
        await grant.commit()
    answer = await filed
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "approved"


async def test_a_checkout_replayed_after_its_refund_shows_the_lead_masked(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """The checkout's answer is kept 24 h for its Idempotency-Key; replayed after a refund
    it gave the contact details back, which the API no longer shows the buyer."""
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 100_000)
    (lead,) = await add_leads(
        runtime, lead_row(clock.now(), phone=TOLL_FREE, email="maria.delgado@gmail.com")
    )
    await recompute(runtime)
    assert (await add(api.client, buyer, lead)).status_code == 201
    first = await checkout(api.client, buyer, "order-1")
    assert first.status_code == 201, first.text
    assert TOLL_FREE in first.text  # bought: revealed
    (purchase,) = first.json()["items"]
    filed = await dispute(api.client, buyer, purchase, "wrong_number")
    assert filed.json()["status"] == "approved", filed.text

    again = await checkout(api.client, buyer, "order-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == first.json()["order_id"]
    assert TOLL_FREE not in again.text
    assert "maria.delgado@gmail.com" not in again.text
    listed = (await api.client.get("/api/v1/purchases", headers=buyer)).json()["items"][0]
    assert again.json()["items"][0]["lead"] == listed["lead"]  # as the API shows it now
