"""Background jobs of the ledger: reconciliation."""

from __future__ import annotations

from datetime import timedelta

import structlog

from aiqleads.kit.idempotency import forget_old
from aiqleads.kit.jobs import job
from aiqleads.ledger.service import Ledger
from aiqleads.runtime import JobContext

log = structlog.get_logger(__name__)

RECONCILE_JOB = "ledger.reconcile"
RECONCILE_EVERY = timedelta(hours=1)


@job(RECONCILE_JOB, every=RECONCILE_EVERY)
async def reconcile_job(ctx: JobContext) -> None:
    """Check that every transaction sums to zero and every cached balance is its entries' sum;
    each mismatch is logged as an error for operators (nothing is corrected by itself)."""
    async with ctx.runtime.transaction(write=False) as session:
        mismatches = await Ledger(session).reconcile()
    for m in mismatches:
        log.error(
            "ledger_mismatch", subject=m.subject, id=str(m.id), expected=m.expected, found=m.found
        )
    log.info("ledger_reconciled", mismatches=len(mismatches))


FORGET_KEYS_JOB = "idempotency.forget"


@job(FORGET_KEYS_JOB, every=timedelta(hours=1))
async def forget_keys_job(ctx: JobContext) -> None:
    """Delete idempotency keys older than their 24 hours (the commerce endpoints' retries)."""
    async with ctx.runtime.transaction() as session:
        forgotten = await forget_old(session, ctx.runtime.clock.now())
    log.info("idempotency_keys_forgotten", count=forgotten)
