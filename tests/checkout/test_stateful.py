"""Commerce as a whole, explored by Hypothesis on both dialects: buyers top up (by an
operator's grant or a Stripe payment whose event is replayed), hold, extend, let holds lapse,
check out, dispute and get refunded, in any order. After every step:

- every ledger transaction sums to zero and every cached balance is the sum of its entries;
- no agent's balance is negative, and each is what the buyer was credited minus what they
  were charged (the model below keeps count from the API's own answers);
- an exclusive lead is sold at most once, a shared one at most its maximum;
- ledger rows are never changed or deleted;
- nothing answers 5xx.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiqleads.accounts.tokens import issue_access_token
from aiqleads.app import create_app
from aiqleads.cart.service import expire_lapsed
from aiqleads.checkout.models import Purchase
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.ledger.models import AccountKind, LedgerAccount, LedgerEntry
from aiqleads.ledger.service import Ledger
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.billing.fake_stripe import WEBHOOK_SECRET, deliver, event, new_id, paid_session
from tests.commerce import buyers, user_of
from tests.conftest import DIALECTS, TEST_SECRET, Api, _truncate_postgres, bearer
from tests.search.factories import add_leads, lead_row

TOLL_FREE = "+18005550199"
PACKS = {"pack-100": 10_000, "pack-500": 52_500}


class Commerce(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FrozenClock(datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
        app = create_app(
            Settings(
                env="test",
                database_url=url,
                secret_key=TEST_SECRET,
                log_level="ERROR",
                stripe_webhook_secret=WEBHOOK_SECRET,
                rate_limits=False,
            ),
            self.clock,
            run_scheduler=False,
        )
        self.runtime: Runtime = app.state.runtime
        self.run(self.runtime.startup())  # the app's lifespan, without its scheduler
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        self.api = Api(self.client, self.runtime)
        self.ops = user_of(self.run(self.api.admin()).auth)
        auths = self.run(buyers(self.runtime, 2)) + self.run(buyers(self.runtime, 1, plan="pro"))
        self.buyers = [user_of(a) for a in auths]
        now = self.clock.now()
        self.leads: list[Lead] = self.run(
            add_leads(
                self.runtime,
                *(lead_row(now, phone=TOLL_FREE if i % 2 else "+17025550143") for i in range(4)),
                lead_row(now, exclusivity=Exclusivity.SHARED, max_sales=2),
                lead_row(now, exclusivity=Exclusivity.SHARED, max_sales=2, phone=TOLL_FREE),
            )
        )
        self.run(recompute(self.runtime))
        self.expected = dict.fromkeys(self.buyers, 0)
        for buyer in range(len(self.buyers)):
            self.top_up(buyer, 40_000)
        self.entries: dict[uuid.UUID, tuple[Any, ...]] = {}
        self.holding: set[int] = set()  # buyers who may have something in their cart

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.run(self.runtime.shutdown())
        self.loop.close()

    def auth(self, buyer: uuid.UUID) -> dict[str, str]:
        token = issue_access_token(self.runtime.settings, buyer, "agent", 1, self.clock.now())
        return bearer(token)

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.run(self.client.request(method, url, **kwargs))
        assert response.status_code < 500, response.text
        return response

    # rules

    events = Bundle("events")
    purchases = Bundle("purchases")
    disputes = Bundle("disputes")

    @rule(buyer=st.integers(0, 2), credits=st.integers(1, 60_000))
    def top_up(self, buyer: int, credits: int) -> None:
        who = self.buyers[buyer]
        response = self.call(
            "POST",
            "/api/v1/admin/credits/grant",
            json={"user_id": str(who), "credits": credits, "reason": "test"},
            headers={**self.ops_auth(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text
        self.expected[who] += credits

    @rule(target=events, buyer=st.integers(0, 2), pack=st.sampled_from(sorted(PACKS)))
    def pay_on_stripe(self, buyer: int, pack: str) -> dict[str, Any]:
        who = self.buyers[buyer]
        metadata = {"user_id": str(who), "credit_pack": pack}
        completed = event(
            "checkout.session.completed",
            paid_session(new_id("cs"), metadata, PACKS[pack]),
            self.clock.now(),
        )
        self._deliver(completed)
        self.expected[who] += PACKS[pack]
        return completed

    @rule(payload=events)
    def replay_webhook(self, payload: dict[str, Any]) -> None:
        self._deliver(payload)  # the same event again: nothing more is credited

    def _deliver(self, payload: dict[str, Any]) -> None:
        response = self.run(deliver(self.client, payload, self.clock.now()))
        assert response.status_code == 200, response.text
        self.run(self.runtime.jobs.wait_idle())

    @rule(buyer=st.integers(0, 2), lead=st.integers(0, 5))
    def hold(self, buyer: int, lead: int) -> None:
        response = self.call(
            "POST",
            "/api/v1/cart/items",
            json={"lead_id": str(self.leads[lead].id)},
            headers=self.auth(self.buyers[buyer]),
        )
        assert response.status_code in {201, 404, 409}, response.text
        if response.status_code == 201:
            self.holding.add(buyer)

    @rule(lead=st.integers(0, 5), duration=st.sampled_from(["24h", "3d"]))
    def extend(self, lead: int, duration: str) -> None:
        response = self.call(
            "POST",
            f"/api/v1/cart/items/{self.leads[lead].id}/extend",
            json={"duration": duration},
            headers=self.auth(self.buyers[2]),  # the Pro buyer
        )
        assert response.status_code in {200, 404, 409}, response.text

    @rule(minutes=st.sampled_from([1, 6, 16, 24 * 60]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.run(expire_lapsed(self.runtime))
        if minutes >= 15:
            self.holding.clear()  # most holds lapsed (an extended one may live on)

    @precondition(lambda self: bool(self.holding))
    @rule(target=purchases, data=st.data())
    def checkout(self, data: st.DataObject) -> Any:
        buyer = data.draw(st.sampled_from(sorted(self.holding)))
        self.holding.discard(buyer)
        who = self.buyers[buyer]
        response = self.call(
            "POST",
            "/api/v1/checkout",
            headers={**self.auth(who), "Idempotency-Key": uuid.uuid4().hex},
        )
        if response.status_code != 201:
            assert response.json()["code"] in {"cart_empty", "insufficient_credits"}, response.text
            return multiple()
        body = response.json()
        self.expected[who] -= body["total_cents"]
        return multiple(*((who, item["id"]) for item in body["items"]))

    @rule(
        target=disputes,
        purchase=consumes(purchases),
        reason=st.sampled_from(["wrong_number", "not_the_owner", "no_consent"]),
    )
    def dispute(self, purchase: tuple[uuid.UUID, str], reason: str) -> Any:
        who, purchase_id = purchase
        response = self.call(
            "POST",
            "/api/v1/disputes",
            json={"purchase_id": purchase_id, "reason": reason},
            headers=self.auth(who),
        )
        if response.status_code != 201:
            assert response.json()["code"] == "dispute_window_closed", response.text
            return multiple()
        body = response.json()
        if body["status"] == "approved":
            self.expected[who] += body["refund_cents"]
            return multiple()
        return (who, body["id"])

    @rule(dispute=consumes(disputes), approve=st.booleans())
    def decide(self, dispute: tuple[uuid.UUID, str], approve: bool) -> None:
        who, dispute_id = dispute
        response = self.call(
            "POST",
            f"/api/v1/admin/disputes/{dispute_id}/decision",
            json={"decision": "approve" if approve else "reject", "reason": "looked"},
            headers=self.ops_auth(),
        )
        assert response.status_code == 200, response.text
        self.expected[who] += response.json()["refund_cents"]

    def ops_auth(self) -> dict[str, str]:
        token = issue_access_token(self.runtime.settings, self.ops, "admin", 1, self.clock.now())
        return bearer(token)

    # invariants

    @invariant()
    def the_ledger_balances(self) -> None:
        async def check() -> None:
            async with self.runtime.transaction(write=False) as session:
                assert await Ledger(session).reconcile() == []
                negative = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(LedgerAccount)
                    .where(LedgerAccount.kind == AccountKind.CREDITS, LedgerAccount.balance < 0)
                )
                assert negative == 0
                rows = await session.execute(
                    sa.select(LedgerAccount.user_id, LedgerAccount.balance).where(
                        LedgerAccount.kind == AccountKind.CREDITS
                    )
                )
                balances = {user: balance for user, balance in rows}
                for buyer, expected in self.expected.items():
                    assert balances.get(buyer, 0) == expected, (buyer, balances, self.expected)
                entries = await session.execute(
                    sa.select(
                        LedgerEntry.id,
                        LedgerEntry.transaction_id,
                        LedgerEntry.account_id,
                        LedgerEntry.amount,
                    )
                )
                now = {r[0]: tuple(r) for r in entries}
                for entry_id, seen in self.entries.items():
                    assert now.get(entry_id) == seen, "a ledger entry changed or vanished"
                self.entries = now

        self.run(check())

    @invariant()
    def no_lead_is_oversold(self) -> None:
        async def check() -> None:
            async with self.runtime.transaction(write=False) as session:
                rows = await session.execute(
                    sa.select(Lead.id, Lead.max_sales, Lead.sales_count, sa.func.count(Purchase.id))
                    .outerjoin(Purchase, Purchase.lead_id == Lead.id)
                    .group_by(Lead.id, Lead.max_sales, Lead.sales_count)
                )
                for _, max_sales, sales_count, purchases in rows:
                    assert purchases <= max_sales
                    assert sales_count == purchases

        self.run(check())


@pytest.mark.parametrize("dialect", DIALECTS)
def test_commerce_keeps_its_invariants_whatever_happens(
    dialect: str, migrated: dict[str, str], tmp_path: Path
) -> None:
    counter = iter(range(1_000_000))

    def fresh() -> Commerce:
        if dialect == "sqlite":
            path = tmp_path / f"commerce-{next(counter)}.db"
            shutil.copy(migrated["sqlite"], path)
            return Commerce(f"sqlite+aiosqlite:///{path}")
        asyncio.run(_truncate_postgres(migrated["postgresql"]))
        return Commerce(migrated["postgresql"])

    run_state_machine_as_test(
        fresh,
        settings=settings(
            max_examples=15,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
