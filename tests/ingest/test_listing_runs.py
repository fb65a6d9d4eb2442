"""Listing-page sources through `run_source`: a run stores the pages' validators, so the next
run asks conditionally and gets 304s for pages that did not change. (Its own module: the
connector tests replace the `clock` fixture with a fake monotonic clock; runs need the
runtime's.)"""

from __future__ import annotations

import httpx

from aiqleads.ingest.service import run_source
from aiqleads.runtime import Runtime
from tests.ingest.loopback import serve
from tests.ingest.test_listings import DETAILS, FakeSite, source


async def test_runs_keep_the_validators_so_the_next_run_fetches_only_changes(
    runtime: Runtime,
) -> None:
    site = FakeSite()
    site.robots_status = 404  # no robots.txt: no crawl delay, so the real clock does not wait
    with serve(site.app()) as base_url:
        config = source(base_url, min_interval=0)
        async with httpx.AsyncClient(timeout=5) as http:
            first = await run_source(runtime, config, trigger="test", http=http)
            assert first.counts["fetched"] == 4

            site.hits.clear()
            second = await run_source(runtime, config, trigger="test", http=http)
    assert second.counts["fetched"] == 0
    detail_hits = [hit for hit in site.hits if hit.target in DETAILS]
    assert len(detail_hits) == 4
    assert all(hit.status == 304 and hit.if_none_match for hit in detail_hits)
