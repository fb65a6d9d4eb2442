"""Background jobs of search: saved-search alerts."""

from __future__ import annotations

from datetime import timedelta

from aiqleads.kit.jobs import job
from aiqleads.runtime import JobContext
from aiqleads.search.saved import check_saved_searches


@job("search.saved_search_alerts", every=timedelta(minutes=5))
async def saved_search_alerts(ctx: JobContext) -> None:
    """Tell agents about leads that went on sale since their saved searches were checked."""
    await check_saved_searches(ctx.runtime, ctx.runtime.clock.now())
