"""The e-mail outbox: queue a message as a row, send it with retries, never drop it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.audit.service import record as audit
from aiqleads.kit.db import defer_job
from aiqleads.kit.errors import NotFound
from aiqleads.kit.retry import backoff
from aiqleads.kit.writes import Writes
from aiqleads.mail.models import EmailStatus, OutboundEmail
from aiqleads.mail.repository import EmailRepository
from aiqleads.mail.smtp import SmtpMailer
from aiqleads.runtime import Runtime

log = structlog.get_logger(__name__)

SEND_JOB = "mail.send"
SEND_LEASE = timedelta(minutes=5)
SWEEP_BATCH = 200
RETRY_BATCH = 1_000


async def queue_email(
    session: AsyncSession,
    runtime: Runtime,
    *,
    kind: str,
    to: str,
    subject: str,
    body: str,
    contains_secret: bool = False,
    writes: Writes | None = None,
) -> OutboundEmail:
    """Write the message to the outbox (queued in `writes` if given); with SMTP configured,
    a sender job runs after commit."""
    now = runtime.clock.now()
    email = OutboundEmail(
        id=uuid.uuid4(),
        kind=kind,
        to_address=to,
        subject=subject,
        body_text=body,
        contains_secret=contains_secret,
        status=EmailStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if writes is not None:
        writes.add(email)
    else:
        await EmailRepository(session).add(email)
    if runtime.settings.smtp_url:
        defer_job(session, SEND_JOB, {"email_id": str(email.id)})
    return email


async def send_email(runtime: Runtime, email_id: uuid.UUID) -> None:
    """Claim, send, record. Three short transactions so no lock is held across the network;
    a crash between them leaves a lapsed lease that the sweeper hands to a new attempt."""
    settings = runtime.settings
    if not settings.smtp_url:
        return
    now = runtime.clock.now()
    async with runtime.transaction() as session:
        repo = EmailRepository(session)
        if not await repo.claim(email_id, now, now + SEND_LEASE):
            return
        email = await repo.get(email_id)
        assert email is not None
        to, subject, body, attempts = (
            email.to_address,
            email.subject,
            email.body_text,
            email.attempts,
        )

    error: str | None = None
    try:
        await SmtpMailer(settings.smtp_url, settings.mail_from).send(
            to, subject, body, str(email_id)
        )
    except Exception as exc:  # any SMTP/network failure is retried, not raised
        error = f"{type(exc).__name__}: {exc}"[:2000]

    async with runtime.transaction() as session:
        email = await EmailRepository(session).get(email_id)
        assert email is not None
        finished = runtime.clock.now()
        email.locked_until = None
        if error is None:
            email.status = EmailStatus.SENT
            email.sent_at = finished
            email.last_error = None
            log.info("email_sent", email_id=str(email_id), kind=email.kind)
        elif attempts >= settings.mail_max_attempts:
            email.status = EmailStatus.FAILED
            email.last_error = error
            log.error("email_failed", email_id=str(email_id), attempts=attempts, error=error)
        else:
            email.status = EmailStatus.PENDING
            email.next_attempt_at = finished + backoff(attempts)
            email.last_error = error
            log.warning("email_retry", email_id=str(email_id), attempts=attempts, error=error)


async def retry_failed(
    session: AsyncSession, runtime: Runtime, operator_id: uuid.UUID, email_id: uuid.UUID | None
) -> int:
    """An operator sends failed messages again (after an SMTP outage that outlasted the
    retries, say): the one, or the oldest RETRY_BATCH, back in the outbox, due now, audited;
    returns how many."""
    now = runtime.clock.now()
    ids = await EmailRepository(session).requeue_failed(now, RETRY_BATCH, email_id)
    if email_id is not None and not ids:
        raise NotFound("No failed e-mail with this id", code="email_not_failed")
    audit(
        session,
        actor_id=operator_id,
        action="mail.retry",
        subject_type="email",
        subject_id=str(email_id) if email_id is not None else "failed",
        at=now,
        detail={"count": len(ids)},
    )
    if runtime.settings.smtp_url:
        for requeued in ids:
            defer_job(session, SEND_JOB, {"email_id": str(requeued)})
    return len(ids)


async def sweep_outbox(runtime: Runtime) -> int:
    """Re-queue messages that are due or whose sender crashed; returns how many."""
    if not runtime.settings.smtp_url:
        return 0
    async with runtime.transaction() as session:
        ids = await EmailRepository(session).due_ids(runtime.clock.now(), SWEEP_BATCH)
        for email_id in ids:
            defer_job(session, SEND_JOB, {"email_id": str(email_id)})
    return len(ids)


REDACTED = "[hidden: this message carries a sign-in secret and was delivered by e-mail]"


async def list_emails(
    session: AsyncSession, runtime: Runtime, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[OutboundEmail]:
    """The outbox for operators. Without SMTP the outbox is the only mailbox, so bodies are
    shown; with SMTP, secret-bearing bodies are hidden (they reach their owner by e-mail)."""
    rows = await EmailRepository(session).page(limit, before)
    if runtime.settings.smtp_url:
        for row in rows:
            if row.contains_secret:
                session.expunge(row)  # never written back
                row.body_text = REDACTED
    return rows
