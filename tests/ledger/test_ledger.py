"""The credits ledger on both dialects: balanced transactions only, an agent's credits never
below zero (by the database too), entries that cannot be changed, and reconciliation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from aiqleads.accounts.models import User
from aiqleads.kit.clock import FrozenClock
from aiqleads.ledger.models import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
)
from aiqleads.ledger.service import InsufficientCredits, Ledger, Leg, UnbalancedTransaction
from aiqleads.runtime import Runtime
from tests.conftest import Account, Api

GRANT = "/api/v1/admin/credits/grant"


async def user_id(runtime: Runtime, email: str) -> uuid.UUID:
    async with runtime.transaction(write=False) as session:
        found = await session.scalar(sa.select(User.id).where(User.email == email))
    assert found is not None
    return found


async def credits_of(api: Api, agent: Account) -> dict[str, object]:
    response = await api.client.get("/api/v1/credits", headers=agent.auth)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def fund(runtime: Runtime, owner: uuid.UUID, credits: int) -> None:
    async with runtime.transaction() as session:
        ledger = Ledger(session)
        now = runtime.clock.now()
        source = await ledger.account(AccountKind.GRANTS, now)
        target = await ledger.credits(owner, now)
        await ledger.post(TransactionKind.GRANT, [Leg(source, -credits), Leg(target, credits)], now)


async def spend(runtime: Runtime, owner: uuid.UUID, credits: int, reference: str) -> None:
    async with runtime.transaction() as session:
        ledger = Ledger(session)
        now = runtime.clock.now()
        buyer = await ledger.credits(owner, now)
        revenue = await ledger.account(AccountKind.REVENUE, now)
        await ledger.post(
            TransactionKind.PURCHASE,
            [Leg(buyer, -credits), Leg(revenue, credits)],
            now,
            reference=reference,
        )


async def reconcile(runtime: Runtime) -> list[object]:
    async with runtime.transaction(write=False) as session:
        return list(await Ledger(session).reconcile())


async def test_an_operator_grants_credits_and_the_agent_sees_balance_and_history(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    ops = await api.admin()
    agent_id = await user_id(runtime, agent.email)
    assert await credits_of(api, agent) == {"balance": 0, "items": [], "next_cursor": None}

    first = await api.client.post(
        GRANT,
        json={"user_id": str(agent_id), "credits": 500, "reason": "paid by wire"},
        headers=ops.auth,
    )
    assert first.status_code == 201, first.text
    assert first.json()["balance"] == 500
    clock.advance(timedelta(minutes=1))
    second = await api.client.post(
        GRANT,
        json={"user_id": str(agent_id), "credits": 25, "reason": "goodwill"},
        headers=ops.auth,
    )
    assert second.json()["balance"] == 525

    body = await credits_of(api, agent)
    assert body["balance"] == 525
    items = body["items"]
    assert isinstance(items, list)
    assert [(i["kind"], i["credits"], i["memo"]) for i in items] == [
        ("grant", 25, "goodwill"),
        ("grant", 500, "paid by wire"),
    ]
    # Paged, newest first.
    page = (await api.client.get("/api/v1/credits?limit=1", headers=agent.auth)).json()
    rest = await api.client.get(
        f"/api/v1/credits?limit=1&cursor={page['next_cursor']}", headers=agent.auth
    )
    assert [i["memo"] for i in page["items"] + rest.json()["items"]] == ["goodwill", "paid by wire"]

    # Audited, and the agent is told in the app.
    audit = (await api.client.get("/api/v1/admin/audit", headers=ops.auth)).json()["items"]
    assert [
        (a["action"], a["detail"]["credits"]) for a in audit if a["action"] == "credits.grant"
    ] == [
        ("credits.grant", 25),
        ("credits.grant", 500),
    ]
    inbox = (await api.client.get("/api/v1/notifications", headers=agent.auth)).json()["items"]
    assert inbox[0]["kind"] == "credits_granted"
    assert inbox[0]["title"] == "25 credits added"
    assert await reconcile(runtime) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"credits": 0, "reason": "x"}, 422),
        ({"credits": -5, "reason": "x"}, 422),
        ({"credits": 10, "reason": ""}, 422),
        ({"credits": 10}, 422),
    ],
)
async def test_a_bad_grant_is_refused_with_a_problem(
    api: Api, runtime: Runtime, body: dict[str, object], status: int
) -> None:
    agent = await api.signup("agent@realty.example.com")
    ops = await api.admin()
    payload = {"user_id": str(await user_id(runtime, agent.email)), **body}
    response = await api.client.post(GRANT, json=payload, headers=ops.auth)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await credits_of(api, agent))["balance"] == 0


async def test_only_operators_grant_and_only_to_someone_who_exists(
    api: Api, runtime: Runtime
) -> None:
    agent = await api.signup("agent@realty.example.com")
    ops = await api.admin()
    own = {"user_id": str(await user_id(runtime, agent.email)), "credits": 9, "reason": "me"}
    assert (await api.client.post(GRANT, json=own, headers=agent.auth)).status_code == 403
    nobody = {**own, "user_id": str(uuid.uuid4())}
    response = await api.client.post(GRANT, json=nobody, headers=ops.auth)
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"
    assert (await credits_of(api, agent))["balance"] == 0
    assert (await api.client.get("/api/v1/credits")).status_code == 401


async def test_a_transaction_must_balance_and_a_debit_cannot_overdraw(
    api: Api, runtime: Runtime
) -> None:
    agent = await api.signup("agent@realty.example.com")
    owner = await user_id(runtime, agent.email)
    await fund(runtime, owner, 10)
    async with runtime.transaction() as session:
        ledger = Ledger(session)
        now = runtime.clock.now()
        buyer = await ledger.credits(owner, now)
        revenue = await ledger.account(AccountKind.REVENUE, now)
        for legs in (
            [Leg(buyer, -3), Leg(revenue, 2)],  # does not sum to zero
            [Leg(buyer, -3)],  # one side only
            [Leg(buyer, 0), Leg(revenue, 0)],  # nothing moves
        ):
            with pytest.raises(UnbalancedTransaction):
                await ledger.post(TransactionKind.PURCHASE, legs, now)
    with pytest.raises(InsufficientCredits):
        await spend(runtime, owner, 11, "lead-1")
    await spend(runtime, owner, 10, "lead-2")
    assert (await credits_of(api, agent))["balance"] == 0
    with pytest.raises(InsufficientCredits):
        await spend(runtime, owner, 1, "lead-3")
    # The same purchase is not charged twice.
    await fund(runtime, owner, 5)
    with pytest.raises(Exception, match="already posted"):
        await spend(runtime, owner, 5, "lead-2")
    assert (await credits_of(api, agent))["balance"] == 5
    assert await reconcile(runtime) == []


async def test_accounts_are_opened_once_and_a_posting_leaves_the_balances_it_made(
    api: Api, runtime: Runtime
) -> None:
    agent = await api.signup("agent@realty.example.com")
    owner = await user_id(runtime, agent.email)
    async with runtime.transaction() as session:
        ledger = Ledger(session)
        now = runtime.clock.now()
        credits, grants = await ledger.accounts(
            now, (AccountKind.CREDITS, owner), (AccountKind.GRANTS, None)
        )
        assert (credits.kind, credits.user_id) == (AccountKind.CREDITS, owner)
        assert (grants.kind, grants.owner) == (AccountKind.GRANTS, "")
        again = await ledger.accounts(now, (AccountKind.GRANTS, None), (AccountKind.CREDITS, owner))
        assert [a.id for a in again] == [grants.id, credits.id]
        before = await ledger.balance(grants)
        await ledger.post(TransactionKind.GRANT, [Leg(grants, -7), Leg(credits, 7)], now)
        await ledger.post(TransactionKind.GRANT, [Leg(grants, -5), Leg(credits, 5)], now)
        assert credits.balance == 12  # the agent's, cached and moved by each posting
        assert grants.balance is None  # the platform's: summed from its entries instead
        assert await ledger.balance(grants) == before - 12
    assert (await credits_of(api, agent))["balance"] == 12
    async with runtime.transaction(write=False) as session:
        opened = await session.scalar(
            sa.select(sa.func.count())
            .select_from(LedgerAccount)
            .where(LedgerAccount.kind == AccountKind.CREDITS, LedgerAccount.owner == str(owner))
        )
    assert opened == 1
    assert await reconcile(runtime) == []


async def test_the_database_itself_refuses_a_negative_balance_and_changed_entries(
    api: Api, runtime: Runtime
) -> None:
    agent = await api.signup("agent@realty.example.com")
    owner = await user_id(runtime, agent.email)
    await fund(runtime, owner, 10)
    with pytest.raises(IntegrityError):
        async with runtime.transaction() as session:
            await session.execute(
                sa.update(LedgerAccount)
                .where(LedgerAccount.kind == AccountKind.CREDITS)
                .values(balance=-1)
            )
    for change in (
        sa.update(LedgerEntry).values(amount=LedgerEntry.amount * 2),
        sa.delete(LedgerEntry),
        sa.update(LedgerTransaction).values(memo="rewritten"),
        sa.delete(LedgerTransaction),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.transaction() as session:
                await session.execute(change)
    assert (await credits_of(api, agent))["balance"] == 10
    assert await reconcile(runtime) == []


async def test_reconciliation_finds_a_balance_that_drifted_from_its_entries(
    api: Api, runtime: Runtime
) -> None:
    agent = await api.signup("agent@realty.example.com")
    owner = await user_id(runtime, agent.email)
    await fund(runtime, owner, 10)
    async with runtime.transaction() as session:  # written around Ledger.post
        await session.execute(
            sa.update(LedgerAccount).where(LedgerAccount.user_id == owner).values(balance=12)
        )
    found = await reconcile(runtime)
    assert [(m.subject, m.expected, m.found) for m in found] == [("account", 10, 12)]  # type: ignore[attr-defined]


async def test_concurrent_debits_never_overdraw(api: Api, runtime: Runtime) -> None:
    """Fifty purchases of one credit at once against a balance of ten: exactly ten succeed
    (PostgreSQL: row locks on the balance; SQLite: one writer at a time)."""
    agent = await api.signup("agent@realty.example.com")
    owner = await user_id(runtime, agent.email)
    await fund(runtime, owner, 10)

    async def attempt(n: int) -> bool:
        try:
            await spend(runtime, owner, 1, f"lead-{n}")
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert sum(results) == 10
    assert (await credits_of(api, agent))["balance"] == 0
    assert await reconcile(runtime) == []


async def test_history_is_only_your_own(
    api: Api, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    alice = await api.signup("alice@realty.example.com")
    bob = await api.signup("bob@realty.example.com")
    await fund(runtime, await user_id(runtime, alice.email), 7)
    assert (await credits_of(api, bob)) == {"balance": 0, "items": [], "next_cursor": None}
    assert (await credits_of(api, alice))["balance"] == 7


async def test_sales_do_not_queue_on_the_platform_revenue_account(
    api: Api, runtime: Runtime
) -> None:
    """A posting locks the agents' accounts it moves and no platform account: two buyers'
    purchases go through while a third transaction still holds its own sale to revenue open
    (PostgreSQL would have made them wait on the revenue row until it ended). SQLite has one
    writer at a time whatever the rows, so there it is the balances that are checked."""
    owners = []
    for name in ("a", "b", "c"):
        agent = await api.signup(f"{name}@realty.example.com")
        owners.append(await user_id(runtime, agent.email))
        await fund(runtime, owners[-1], 10)
    now = runtime.clock.now()

    async def sale(owner: uuid.UUID, reference: str) -> None:
        async with runtime.transaction() as session:
            ledger = Ledger(session)
            credits, revenue = await ledger.accounts(
                now, (AccountKind.CREDITS, owner), (AccountKind.REVENUE, None)
            )
            await ledger.post(
                TransactionKind.PURCHASE,
                [Leg(credits, -3), Leg(revenue, 3)],
                now,
                reference=reference,
            )

    async with runtime.transaction() as session:  # opened once, as by the first sale ever
        await Ledger(session).account(AccountKind.REVENUE, now)
    if runtime.db.dialect == "postgresql":
        async with runtime.transaction() as open_session:
            ledger = Ledger(open_session)
            credits, revenue = await ledger.accounts(
                now, (AccountKind.CREDITS, owners[0]), (AccountKind.REVENUE, None)
            )
            await ledger.post(
                TransactionKind.PURCHASE, [Leg(credits, -3), Leg(revenue, 3)], now, reference="a"
            )
            # Still open: the others must not wait for it.
            await asyncio.wait_for(
                asyncio.gather(sale(owners[1], "b"), sale(owners[2], "c")), timeout=5
            )
    else:
        for owner, reference in zip(owners, "abc", strict=True):
            await sale(owner, reference)
    async with runtime.transaction(write=False) as session:
        ledger = Ledger(session)
        revenue = await ledger.account(AccountKind.REVENUE, now)
        assert await ledger.balance(revenue) == 9
        assert revenue.balance is None
        for owner in owners:
            assert await ledger.balance(await ledger.credits(owner, now)) == 7
    assert await reconcile(runtime) == []
