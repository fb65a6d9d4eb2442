"""Listing-page sources through `run_source`: a run stores the pages' validators, so the next
run asks conditionally and gets 304s for pages that did not change. (Its own module: the
connector tests replace the `clock` fixture with a fake monotonic clock; runs need the
runtime's.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from aiqleads.ingest import service
from aiqleads.ingest.models import IngestionRun, RunStatus, SourceRecord
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.service import abandon, run_source
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.errors import Conflict
from aiqleads.runtime import Runtime
from tests.ingest.loopback import serve
from tests.ingest.test_listings import BELL_RD, DETAILS, FakeSite, source


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


async def stored_keys(runtime: Runtime, config: SourceConfig) -> set[str]:
    async with runtime.transaction(write=False) as session:
        return set(
            await session.scalars(
                sa.select(SourceRecord.source_key).where(SourceRecord.source == config.slug)
            )
        )


async def test_a_failed_crawl_loses_none_of_the_pages_it_fetched_but_did_not_store(
    runtime: Runtime,
) -> None:
    site = FakeSite()
    site.robots_status = 404
    site.broken.add("/listings?page=2")  # the second index page is down for the whole run
    with serve(site.app()) as base_url:
        config = source(base_url, min_interval=0)
        async with httpx.AsyncClient(timeout=5) as http:
            first = await run_source(runtime, config, trigger="test", http=http)
            # The three listings of index page 1 were fetched, but their batch never committed.
            assert first.status is RunStatus.FAILED
            assert await stored_keys(runtime, config) == set()

            site.broken.clear()
            second = await run_source(runtime, config, trigger="test", http=http)

    assert second.status is RunStatus.SUCCEEDED
    assert await stored_keys(runtime, config) == set(DETAILS)


class GatedSite(FakeSite):
    """A slow site: its answer to the first request for `gated` waits for the test's gate."""

    gated = BELL_RD

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    async def handle(self, request: Request) -> Response:
        if request.url.path == self.gated and not self.waiting.is_set():
            self.waiting.set()
            await asyncio.to_thread(self.gate.wait, 30)
        return await super().handle(request)


@asynccontextmanager
async def slow_crawl(
    runtime: Runtime,
) -> AsyncIterator[tuple[asyncio.Task[IngestionRun], SourceConfig, GatedSite]]:
    """A crawl under way, held inside one page request until the gate opens."""
    site = GatedSite()
    site.robots_status = 404
    with serve(site.app()) as base_url:
        config = source(base_url, min_interval=0)
        async with httpx.AsyncClient(timeout=60) as http:
            crawl = asyncio.create_task(run_source(runtime, config, trigger="schedule", http=http))
            try:
                assert await asyncio.to_thread(site.waiting.wait, 10)
                yield crawl, config, site
            finally:
                site.gate.set()
                await asyncio.wait([crawl])


async def heartbeat(runtime: Runtime, config: SourceConfig) -> datetime | None:
    async with runtime.transaction(write=False) as session:
        [run] = await IngestRepository(session).running(config.slug)
    return run.heartbeat_at


async def test_a_crawl_still_fetching_its_first_batch_is_not_taken_for_abandoned(
    runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HEARTBEAT_EVERY", timedelta(milliseconds=10))
    async with slow_crawl(runtime) as (crawl, config, _):
        # A polite crawl (2 s a page, more with a Crawl-delay, 500 or 2,000 pages a batch)
        # fetches for well over 15 minutes before its first batch commits.
        clock.advance(timedelta(minutes=16))
        deadline = time.monotonic() + 10
        while await heartbeat(runtime, config) != clock.now() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the crawl's heartbeat, written while it fetches

        with pytest.raises(Conflict):  # not a second crawl of the site beside the first
            await run_source(runtime, config, trigger="cli")
    assert crawl.result().status is RunStatus.SUCCEEDED
    assert await stored_keys(runtime, config) == set(DETAILS)


async def test_a_run_closed_as_abandoned_stays_closed_when_its_process_finishes(
    runtime: Runtime,
) -> None:
    async with slow_crawl(runtime) as (crawl, config, _):
        # Another process took the crawl for abandoned (it was stuck) and closed it.
        async with runtime.transaction() as session:
            [run] = await IngestRepository(session).running(config.slug)
            abandon(run, runtime.clock.now())
    done = crawl.result()
    async with runtime.transaction(write=False) as session:
        stored = await IngestRepository(session).get_run(done.id)
    assert stored is not None
    assert stored.status is done.status is RunStatus.FAILED
    assert stored.errors[0].startswith("abandoned")
    # What it fetched is left to the run that replaced it.
    assert await stored_keys(runtime, config) == set()
