"""Background jobs of accounts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from aiqleads.accounts.repository import AccountRepository
from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext

TOUCH_API_KEY = "accounts.touch_api_key"


@job(TOUCH_API_KEY)
async def touch_api_key(ctx: JobContext, key_id: str, at: str) -> None:
    """Record when a key was last used, off the request's path."""
    async with ctx.transaction() as session:
        await AccountRepository(session).touch_api_key(
            uuid.UUID(key_id), datetime.fromisoformat(at)
        )


@job("accounts.prune", every=timedelta(hours=1))
async def prune(ctx: JobContext) -> None:
    """Forget idle lockout counters, and tokens that can no longer be used."""
    now = ctx.runtime.clock.now()
    async with ctx.transaction() as session:
        await AccountRepository(session).prune(now, idle=timedelta(days=1))
