"""Background jobs of carts: lapsed holds end and their leads go back on sale."""

from __future__ import annotations

from datetime import timedelta

import structlog

from aiqleads.cart.service import expire_lapsed, warn_lapsing
from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext

log = structlog.get_logger(__name__)

EXPIRE_JOB = "cart.expire_holds"


@job(EXPIRE_JOB, every=timedelta(minutes=1))
async def expire_job(ctx: JobContext) -> None:
    """Warn buyers whose holds lapse within five minutes, and end the holds whose time is up
    (adding a lead ends a lapsed hold on it at once too)."""
    warned = await warn_lapsing(ctx.runtime)
    ended = await expire_lapsed(ctx.runtime)
    if warned or ended:
        log.info("holds_checked", warned=warned, expired=ended)
