"""Background jobs of carts: lapsed holds end and their leads go back on sale."""

from __future__ import annotations

from datetime import timedelta

import structlog

from aiqleads.cart.service import expire_lapsed
from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext

log = structlog.get_logger(__name__)

EXPIRE_JOB = "cart.expire_holds"


@job(EXPIRE_JOB, every=timedelta(minutes=1))
async def expire_job(ctx: JobContext) -> None:
    """End the holds whose time is up (adding a lead ends a lapsed hold on it at once too)."""
    ended = await expire_lapsed(ctx.runtime)
    if ended:
        log.info("holds_expired", count=ended)
