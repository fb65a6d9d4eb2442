"""Crashes: a real `aiqleads serve` process is killed (SIGKILL) at the worst moment, then the
service starts again. Nothing is lost and nothing happens twice:

- after a checkout committed but before its receipt e-mail was sent (the sender holds the
  message, talking to an SMTP server that never answers): after the restart the receipt goes
  out once, the buyer was charged once, and a retried checkout is answered from its key;
- (PostgreSQL) after a Stripe payment event was stored but while the credit grant was half
  done (blocked on a row lock the test holds): the grant's transaction dies with the process,
  and after the restart the sweeper grants the credits exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from aiqleads.billing.models import EventStatus, PaymentEvent
from aiqleads.billing.tasks import sweep_events
from aiqleads.checkout.models import Order, Purchase
from aiqleads.kit.clock import FrozenClock
from aiqleads.ledger.models import LedgerAccount, LedgerTransaction, TransactionKind
from aiqleads.mail.models import EmailStatus, OutboundEmail
from aiqleads.mail.service import sweep_outbox
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.billing.fake_stripe import WEBHOOK_SECRET, deliver, event, new_id, paid_session
from tests.commerce import buyers, funded, user_of
from tests.conftest import DIALECTS, TEST_SECRET, SmtpSink, free_port
from tests.ledger.test_ledger import reconcile
from tests.search.factories import add_leads, lead_row

AIQLEADS = str(Path(sys.executable).parent / "aiqleads")


def base_settings(database_url: str, **extra: object) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        log_level="WARNING",
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def server(database_url: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`aiqleads serve` in a process of its own, on the system clock."""
    port = free_port()
    environment = {
        **os.environ,
        "AIQLEADS_ENV": "test",
        "AIQLEADS_DATABASE_URL": database_url,
        "AIQLEADS_SECRET_KEY": TEST_SECRET,
        "AIQLEADS_PORT": str(port),
        "AIQLEADS_LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(  # noqa: S603  (our own command)
        [AIQLEADS, "serve"], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                assert process.stderr is not None
                error = process.stderr.read().decode(errors="replace")
                raise RuntimeError(f"aiqleads serve exited ({process.returncode}): {error}")
            if time.monotonic() > deadline:
                raise RuntimeError("aiqleads serve did not answer /healthz in 60 s")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def crash(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@contextmanager
def silent_smtp() -> Iterator[int]:
    """A port that accepts connections and never says a word (an SMTP server hung)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


@pytest.fixture
async def local(database_url: str) -> AsyncIterator[Runtime]:
    """The test's own view of the database, on the system clock like the server's."""
    runtime = Runtime(base_settings(database_url))
    yield runtime
    await runtime.db.engine.dispose()


async def test_a_crash_after_checkout_commits_loses_no_receipt_and_charges_once(
    database_url: str, local: Runtime, smtp_server: tuple[SmtpSink, int]
) -> None:
    sink, smtp_port = smtp_server
    (buyer,) = await buyers(local, 1)
    await funded(local, buyer, 100_000)
    lead = (await add_leads(local, lead_row(local.clock.now())))[0]
    await recompute(local)
    key = {"Idempotency-Key": uuid.uuid4().hex}

    with (
        silent_smtp() as hung,
        server(database_url, AIQLEADS_SMTP_URL=f"smtp://127.0.0.1:{hung}") as (url, process),
    ):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            held = await client.post(
                "/api/v1/cart/items", json={"lead_id": str(lead.id)}, headers=buyer
            )
            assert held.status_code == 201, held.text
            bought = await client.post("/api/v1/checkout", headers={**buyer, **key})
            assert bought.status_code == 201, bought.text

        async def claimed() -> bool:
            async with local.transaction(write=False) as session:
                status = await session.scalar(
                    sa.select(OutboundEmail.status).where(OutboundEmail.kind == "purchase_receipt")
                )
            return status is EmailStatus.SENDING

        await wait_for(claimed)  # the sender took the message and waits on the server
        crash(process)

    # Restarted: once the dead sender's lease has lapsed, the sweeper sends the receipt.
    later = FrozenClock(local.clock.now() + timedelta(minutes=6))
    restarted = Runtime(
        base_settings(database_url, smtp_url=f"smtp://127.0.0.1:{smtp_port}"), later
    )
    await restarted.startup()
    try:
        assert await sweep_outbox(restarted) == 1
        await restarted.jobs.wait_idle()
        assert await sweep_outbox(restarted) == 0
    finally:
        await restarted.shutdown()
    receipts = [m for m in sink.messages if b"Your receipt" in m.content]
    assert len(receipts) == 1

    with server(database_url) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            retried = await client.post("/api/v1/checkout", headers={**buyer, **key})
            assert retried.status_code == 201
            assert retried.headers["Idempotent-Replayed"] == "true"
            assert retried.json() == bought.json()
            credits = (await client.get("/api/v1/credits", headers=buyer)).json()
    assert credits["balance"] == 100_000 - bought.json()["total_cents"]
    async with local.transaction(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Order)) == 1
        assert await session.scalar(sa.select(sa.func.count()).select_from(Purchase)) == 1
    assert await reconcile(local) == []


# It holds a PostgreSQL row lock to stop the grant half way.
@pytest.mark.parametrize("database_url", [d for d in DIALECTS if d == "postgresql"], indirect=True)
async def test_a_crash_in_the_middle_of_a_credit_grant_grants_once_after_restart(
    database_url: str, local: Runtime
) -> None:
    (buyer,) = await buyers(local, 1)
    await funded(local, buyer, 1)  # opens the buyer's credits account
    owner = str(user_of(buyer))
    completed = event(
        "checkout.session.completed",
        paid_session(new_id("cs"), {"user_id": owner, "credit_pack": "pack-100"}, 10_000),
        local.clock.now(),
    )

    blocker = local.db.engine
    async with blocker.connect() as lock:
        transaction = await lock.begin()
        await lock.execute(
            sa.select(LedgerAccount.id).where(LedgerAccount.owner == owner).with_for_update()
        )
        with server(database_url, AIQLEADS_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET) as (url, process):
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                stored = await deliver(client, completed, local.clock.now())
                assert stored.json() == {"received": True, "duplicate": False}

            async def granting() -> bool:
                async with blocker.connect() as watch:  # a transaction sees one snapshot
                    waiting = await watch.scalar(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query ILIKE 'UPDATE ledger_accounts%'"
                        )
                    )
                return bool(waiting)

            await wait_for(granting)  # the grant is half done, waiting on our lock
            crash(process)
        await transaction.rollback()

    restarted = Runtime(base_settings(database_url))
    await restarted.startup()
    try:
        assert await sweep_events(restarted) == 1
        assert await sweep_events(restarted) == 0
    finally:
        await restarted.shutdown()
    async with local.transaction(write=False) as session:
        status = await session.scalar(sa.select(PaymentEvent.status))
        top_ups = await session.scalar(
            sa.select(sa.func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.kind == TransactionKind.TOP_UP)
        )
        balance = await session.scalar(
            sa.select(LedgerAccount.balance).where(LedgerAccount.owner == owner)
        )
    assert status is EventStatus.PROCESSED
    assert top_ups == 1
    assert balance == 1 + 10_000

    # Stripe, having had no trouble, may still deliver it again: a duplicate, nothing more.
    with server(database_url, AIQLEADS_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            again = await deliver(client, completed, local.clock.now())
    assert again.json() == {"received": True, "duplicate": True}
    assert await reconcile(local) == []
