"""Background jobs of the e-mail outbox."""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiqleads.kit.jobs import job
from aiqleads.mail import service
from aiqleads.runtime import JobContext


@job(service.SEND_JOB)
async def send_email(ctx: JobContext, email_id: str) -> None:
    await service.send_email(ctx.runtime, uuid.UUID(email_id))


@job("mail.sweep_outbox", every=timedelta(seconds=30))
async def sweep_outbox(ctx: JobContext) -> None:
    await service.sweep_outbox(ctx.runtime)
