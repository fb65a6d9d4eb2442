"""Background jobs of pricing: the scheduled recompute."""

from __future__ import annotations

from datetime import timedelta

from aiqleads.kit.jobs import job
from aiqleads.pricing.service import recompute
from aiqleads.runtime import JobContext

RECOMPUTE_JOB = "pricing.recompute"
RECOMPUTE_EVERY = timedelta(minutes=15)


@job(RECOMPUTE_JOB, every=RECOMPUTE_EVERY)
async def recompute_job(ctx: JobContext, market: str | None = None) -> None:
    """Measure demand and supply again and store every price on sale that changed."""
    await recompute(ctx.runtime, market=market)
