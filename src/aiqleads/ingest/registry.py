"""From a source's configuration to the connector that reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from aiqleads.ingest.connectors.base import Candidate, PullConnector, PushConnector, RawRecord
from aiqleads.ingest.connectors.fetcher import PoliteFetcher
from aiqleads.ingest.connectors.listings import LISTING_SITES, ListingPageOptions
from aiqleads.ingest.connectors.mapped import (
    CsvConnector,
    FacebookLeadConnector,
    FieldsConnector,
    LinkedInLeadConnector,
)
from aiqleads.ingest.connectors.reso import ResoConnector
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.clock import Clock

USER_AGENT = "AIQLeadsBot/0.1 (+https://aiqleads.example.com/bot)"

Fetch = Callable[[datetime | None], AsyncIterator[RawRecord]]


@dataclass(frozen=True)
class Wired:
    """A source ready to run: how to parse its records and, for pull sources, fetch them."""

    parse: Callable[[RawRecord], Candidate]
    fetch: Fetch | None


def wire(
    source: SourceConfig,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Clock,
    validators: dict[str, Any] | None = None,
    file: Path | None = None,
) -> Wired:
    """The connector for `source`. Pull sources fetch through `http` (CSV reads `file`);
    without it a RESO or listing-page source is wired to parse only (a replay)."""
    if source.type == "csv":
        csv = CsvConnector(source, file)
        return Wired(csv.parse, csv.fetch if csv.path else None)
    push: PushConnector | None = None
    if source.type == "facebook":
        push = FacebookLeadConnector(source)
    elif source.type == "linkedin":
        push = LinkedInLeadConnector(source)
    elif source.type in ("webform", "demo"):
        push = FieldsConnector(source)
    if push is not None:
        return Wired(push.parse, None)
    if source.type == "reso":
        reso: PullConnector = ResoConnector(source, http, clock=clock)
        return Wired(reso.parse, reso.fetch if http is not None else None)
    if source.type == "listing_page":
        site_name = str(source.options.get("site") or "fsbo")
        if site_name not in LISTING_SITES:
            raise ValueError(f"source {source.slug}: unknown listing site {site_name!r}")
        site = LISTING_SITES[site_name]
        fetcher = (
            PoliteFetcher(
                http,
                user_agent=USER_AGENT,
                min_interval=ListingPageOptions.model_validate(source.options).min_interval,
                validators=validators if validators is not None else {},
            )
            if http is not None
            else None
        )
        connector: PullConnector = site(source, fetcher)
        return Wired(connector.parse, connector.fetch if fetcher is not None else None)
    raise ValueError(f"source {source.slug}: unknown type {source.type}")
