"""Background jobs of billing: applying Stripe's events, renewing manual subscriptions, and
ending the ones whose grace period ran out."""

from __future__ import annotations

from datetime import timedelta

import structlog

from aiqleads.billing.events import apply_event
from aiqleads.billing.repository import BillingRepository
from aiqleads.billing.service import Billing, end_lapsed_grace
from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext, Runtime

log = structlog.get_logger(__name__)

APPLY_EVENT_JOB = "billing.apply_event"
SWEEP_BATCH = 100


@job(APPLY_EVENT_JOB)
async def apply_event_job(ctx: JobContext, event_id: str) -> None:
    await apply_event(ctx.runtime, event_id)


async def sweep_events(runtime: Runtime) -> int:
    """Apply the stored events still pending and due (a crash left them, or they wait for
    another event); returns how many were tried."""
    async with runtime.transaction(write=False) as session:
        due = await BillingRepository(session).due_event_ids(runtime.clock.now(), SWEEP_BATCH)
    for event_id in due:
        await apply_event(runtime, event_id)
    return len(due)


@job("billing.sweep_events", every=timedelta(minutes=1))
async def sweep_events_job(ctx: JobContext) -> None:
    tried = await sweep_events(ctx.runtime)
    if tried:
        log.info("payment_events_swept", tried=tried)


async def run_renewals(runtime: Runtime) -> tuple[int, int]:
    """Bill or end manual subscriptions at their period's end, and end those past their
    grace period; returns (renewed or ended, fallen back to Basic)."""
    async with runtime.transaction() as session:
        renewed = await Billing(session, runtime).renew_manual()
    return renewed, await end_lapsed_grace(runtime)


@job("billing.renewals", every=timedelta(minutes=15))
async def renewals_job(ctx: JobContext) -> None:
    renewed, ended = await run_renewals(ctx.runtime)
    if renewed or ended:
        log.info("subscriptions_checked", renewed=renewed, ended=ended)
