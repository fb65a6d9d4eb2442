"""The e-mail outbox against a real SMTP server on loopback: sent, retried, recovered."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aiqleads.audit.models import AuditEvent
from aiqleads.kit.clock import FrozenClock
from aiqleads.mail import service
from aiqleads.mail.models import EmailStatus, OutboundEmail
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.conftest import TEST_SECRET, Api, SmtpSink, free_port

# These tests run the outbox sweeper themselves and count what it finds; the periodic sweep
# (and the other periodic jobs that start with the app) must not run between their steps.
pytestmark = pytest.mark.no_scheduler


async def outbox(runtime: Runtime) -> list[OutboundEmail]:
    async with runtime.transaction(write=False) as session:
        return list(
            await session.scalars(sa.select(OutboundEmail).order_by(OutboundEmail.created_at))
        )


def smtp_settings(database_url: str, port: int, **extra: object) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        smtp_url=f"smtp://127.0.0.1:{port}",
        log_level="WARNING",
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, smtp_port: int) -> Settings:
    return smtp_settings(database_url, smtp_port, mail_max_attempts=3)


@pytest.fixture
async def smtp(smtp_port: int) -> AsyncIterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield sink
    controller.stop()


async def test_registration_mail_goes_out_through_smtp(
    api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    await api.register("pat@agents.example.com")
    await runtime.jobs.wait_idle()
    assert len(smtp.messages) == 1
    received = smtp.messages[0]
    assert received.recipients == ["pat@agents.example.com"]
    message = email.message_from_bytes(received.content)
    assert message["Subject"] == "Confirm your AIQLeads e-mail address"
    assert "verify-email?token=" in message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    [row] = await outbox(runtime)
    assert row.status == EmailStatus.SENT
    assert row.attempts == 1
    assert row.sent_at is not None


async def test_a_failed_send_is_retried_with_backoff_until_it_goes(
    api: Api, runtime: Runtime, clock: FrozenClock, smtp_port: int
) -> None:
    await api.register("pat@agents.example.com")  # nothing listens on the SMTP port yet
    await runtime.jobs.wait_idle()
    [row] = await outbox(runtime)
    assert row.status == EmailStatus.PENDING
    assert row.attempts == 1
    assert row.last_error
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)

    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        assert await service.sweep_outbox(runtime) == 0  # not due yet
        clock.advance(timedelta(seconds=30))
        assert await service.sweep_outbox(runtime) == 1
        await runtime.jobs.wait_idle()
    finally:
        controller.stop()
    assert len(sink.messages) == 1
    [row] = await outbox(runtime)
    assert row.status == EmailStatus.SENT
    assert row.attempts == 2
    assert row.last_error is None


async def test_after_the_last_attempt_the_message_is_failed_not_dropped(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    await api.register("pat@agents.example.com")
    await runtime.jobs.wait_idle()
    for delay in (30, 60):
        clock.advance(timedelta(seconds=delay))
        await service.sweep_outbox(runtime)
        await runtime.jobs.wait_idle()
    [row] = await outbox(runtime)
    assert row.status == EmailStatus.FAILED
    assert row.attempts == 3
    assert row.last_error
    clock.advance(timedelta(days=1))
    assert await service.sweep_outbox(runtime) == 0  # given up, but still there for operators
    ops = await api.admin()
    listed = (await api.client.get("/api/v1/admin/emails", headers=ops.auth)).json()["items"]
    assert any(m["status"] == "failed" and m["last_error"] for m in listed)


async def test_an_operator_sends_failed_messages_again_once_smtp_is_back(
    api: Api, runtime: Runtime, clock: FrozenClock, smtp_port: int
) -> None:
    """An outage longer than the retries leaves messages failed: an operator puts them back
    in the outbox (one, or all), audited, and they go."""
    for address in ("pat@agents.example.com", "sam@agents.example.com"):
        await api.register(address)
        await runtime.jobs.wait_idle()
    for delay in (30, 60):  # nothing listens on the SMTP port: three attempts each
        clock.advance(timedelta(seconds=delay))
        await service.sweep_outbox(runtime)
        await runtime.jobs.wait_idle()
    pat, sam = await outbox(runtime)
    assert (pat.status, sam.status) == (EmailStatus.FAILED, EmailStatus.FAILED)
    ops = await api.admin()
    agent = await api.signup("agent@realty.example.com")
    await runtime.jobs.wait_idle()
    refused = await api.client.post("/api/v1/admin/emails/retry-failed", headers=agent.auth)
    assert refused.status_code == 403

    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        one = await api.client.post(f"/api/v1/admin/emails/{pat.id}/retry", headers=ops.auth)
        assert one.json() == {"retried": 1}
        await runtime.jobs.wait_idle()
        assert [m.recipients for m in sink.messages] == [["pat@agents.example.com"]]
        again = await api.client.post(f"/api/v1/admin/emails/{pat.id}/retry", headers=ops.auth)
        assert (again.status_code, again.json()["code"]) == (404, "email_not_failed")
        rest = await api.client.post("/api/v1/admin/emails/retry-failed", headers=ops.auth)
        assert rest.json() == {"retried": 1}
        await runtime.jobs.wait_idle()
    finally:
        controller.stop()
    assert sorted(r for m in sink.messages for r in m.recipients) == [
        "pat@agents.example.com",
        "sam@agents.example.com",
    ]
    statuses = {row.to_address: row.status for row in await outbox(runtime)}
    assert statuses["sam@agents.example.com"] == EmailStatus.SENT
    async with runtime.transaction(write=False) as session:
        retries = list(
            await session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.action == "mail.retry")
            )
        )
    assert retries == ["mail.retry", "mail.retry"]


async def test_a_sender_that_crashed_mid_send_is_recovered(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpSink
) -> None:
    now = clock.now()
    async with runtime.transaction() as session:
        for to, lease in (("crashed@x.example.com", -1), ("busy@x.example.com", 120)):
            session.add(
                OutboundEmail(
                    kind="test",
                    to_address=to,
                    subject="s",
                    body_text="b",
                    status=EmailStatus.SENDING,
                    attempts=1,
                    next_attempt_at=now,
                    locked_until=now + timedelta(seconds=lease),
                    created_at=now,
                )
            )
    assert await service.sweep_outbox(runtime) == 1
    await runtime.jobs.wait_idle()
    assert [m.recipients for m in smtp.messages] == [["crashed@x.example.com"]]


async def test_concurrent_senders_send_a_message_once(runtime: Runtime, smtp: SmtpSink) -> None:
    async with runtime.transaction() as session:
        row = await service.queue_email(
            session, runtime, kind="test", to="once@x.example.com", subject="s", body="b"
        )
        email_id = row.id
    await runtime.jobs.wait_idle()
    smtp.messages.clear()
    async with runtime.transaction() as session:
        fresh = await session.get(OutboundEmail, email_id)
        assert fresh is not None
        fresh.status, fresh.sent_at = EmailStatus.PENDING, None
    await asyncio.gather(*(service.send_email(runtime, email_id) for _ in range(5)))
    assert len(smtp.messages) == 1


async def test_a_subject_quoting_a_unicode_line_break_is_sent_on_one_line(
    api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    """Saved searches named before such names were refused carry U+2028 and the like into
    their alerts' subjects; the email package refuses those headers, so every attempt
    failed and the agent never had the alert."""
    agent = await api.signup("agent@realty.example.com")
    await runtime.jobs.wait_idle()
    smtp.messages.clear()
    async with runtime.transaction() as session:
        await service.queue_email(
            session,
            runtime,
            kind="saved_search_alert",
            to=agent.email,
            subject="New leads for Pools\u2028Spas\x85near the Strip",
            body="3 new leads",
        )
    await runtime.jobs.wait_idle()
    [received] = smtp.messages
    subject = email.message_from_bytes(received.content)["Subject"]
    assert subject == "New leads for Pools Spas near the Strip"
    assert [row.status for row in await outbox(runtime)][-1] == EmailStatus.SENT


async def test_without_smtp_messages_stay_in_the_outbox(
    database_url: str, clock: FrozenClock
) -> None:
    runtime = Runtime(
        Settings(env="test", database_url=database_url, secret_key=TEST_SECRET), clock
    )
    await runtime.startup()
    try:
        async with runtime.transaction() as session:
            await service.queue_email(
                session, runtime, kind="test", to="a@x.example.com", subject="s", body="b"
            )
        await runtime.jobs.wait_idle()
        assert await service.sweep_outbox(runtime) == 0
        [row] = await outbox(runtime)
        assert row.status == EmailStatus.PENDING
        assert row.attempts == 0
    finally:
        await runtime.shutdown()


async def test_operators_do_not_see_sign_in_secrets_once_smtp_delivers_them(
    api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    await api.signup("pat@agents.example.com")
    await api.register("pat@agents.example.com")  # "someone tried to register": no secret
    ops = await api.admin()
    await runtime.jobs.wait_idle()
    items = (await api.client.get("/api/v1/admin/emails", headers=ops.auth)).json()["items"]
    bodies = {
        m["kind"]: m["body_text"] for m in items if m["to_address"] == "pat@agents.example.com"
    }
    assert "token" not in bodies["verify_email"]
    assert bodies["verify_email"].startswith("[hidden")
    assert "already have an account" in bodies["registration_attempt"]
    # the owner got the real link
    assert any(b"verify-email?token=" in m.content for m in smtp.messages)
    [stored] = [m for m in await outbox(runtime) if m.kind == "verify_email"]
    assert "token=" in stored.body_text  # redacted in the response only


def test_a_malformed_smtp_url_is_refused_at_start() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="smtp://"):
        Settings(smtp_url="mail.example.com:25")
