"""Listing-page sources: web sites that show homes for sale, read with CSS selectors.

- `FsboSiteConnector` ("fsbo"): an index of links, paginated, to one page per listing.
- `ClassifiedsConnector` ("classifieds"): one page with many ads inline.

Pages come through `PoliteFetcher` (robots.txt, a pace per host, conditional GET), so a crawl
yields only pages that changed since the validators the fetcher holds. Parsing keeps values as
the site wrote them ("$450K", "2,140 sq ft", "0.21 acres"); the pipeline converts. A page
whose required elements are gone is recorded as failed with `layout_changed`, naming the selector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field
from selectolax.lexbor import LexborHTMLParser, LexborNode

from aiqleads.ingest.connectors.base import Candidate, ParseError, RawRecord
from aiqleads.ingest.connectors.fetcher import Disallowed, FetchResult, PoliteFetcher
from aiqleads.ingest.connectors.http import SourceUnavailable
from aiqleads.ingest.sources import SourceConfig
from aiqleads.quality.normalise import parse_datetime

log = structlog.get_logger(__name__)

# Detail pages that may fail in a row (after the fetcher's retries) before the crawl stops:
# one broken page is skipped, a site that is down fails the run.
MAX_FAILED_IN_A_ROW: Final = 5

# Fact labels both sites use (<dt> or <th> text, lower-cased, colon dropped) -> Candidate field.
FACT_FIELDS: Final = {
    "property type": "property_type",
    "type": "property_type",
    "bedrooms": "beds",
    "beds": "beds",
    "bathrooms": "baths",
    "baths": "baths",
    "living area": "living_area_sqft",
    "sq. ft.": "living_area_sqft",
    "sq ft": "living_area_sqft",
    "square feet": "living_area_sqft",
    "lot size": "lot_size_sqft",
    "lot": "lot_size_sqft",
    "year built": "year_built",
}


class ListingPageOptions(BaseModel):
    """`SourceConfig.options` of a listing-page source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Which site parser to use ("fsbo" / "classifieds"), see LISTING_SITES.
    site: str | None = None
    base_url: str = Field(pattern=r"^https?://[^/]+")
    index_path: str = Field(default="/", pattern=r"^/")
    # FSBO only: how many index pages to walk per crawl.
    max_pages: int = Field(default=20, ge=1)
    # Seconds between two requests to the site (robots.txt Crawl-delay may ask for more).
    min_interval: float = Field(default=2.0, ge=0)


class _ListingSite:
    """What both sites share: options, the fetcher, and fetching a page the polite way.
    Without a `fetcher` the site only parses (a replay of stored records)."""

    def __init__(self, source: SourceConfig, fetcher: PoliteFetcher | None) -> None:
        self._source = source
        self._fetcher = fetcher
        self._options = ListingPageOptions.model_validate(source.options)
        self._index_url = urljoin(self._options.base_url, self._options.index_path)

    async def _page(self, url: str, *, conditional: bool) -> FetchResult | None:
        """The page, or None (with a log line) when robots.txt forbids it, it has not changed
        since the last crawl, or the site did not serve it."""
        if self._fetcher is None:
            raise ValueError(f"source {self._source.slug} needs an HTTP client to fetch")
        try:
            result = await self._fetcher.fetch(url, conditional=conditional)
        except Disallowed:
            log.info("listing_page_disallowed", source=self._source.slug, url=url)
            return None
        if result.not_modified:
            log.debug("listing_page_not_modified", source=self._source.slug, url=url)
            return None
        if result.status != 200 or result.text is None:
            log.warning(
                "listing_page_skipped", source=self._source.slug, url=url, status=result.status
            )
            return None
        return result

    def _same_site(self, url: str) -> bool:
        return urlsplit(url).netloc == urlsplit(self._index_url).netloc


class FsboSiteConnector(_ListingSite):
    """An FSBO site: paginated index pages linking to one detail page per home.

    Each changed detail page becomes one record keyed by its URL path; the index pages are
    always fetched in full, since a new listing can appear without the old ones changing.
    """

    async def fetch(self, since: datetime | None) -> AsyncIterator[RawRecord]:
        """Detail pages changed since the last crawl. `since` is unused: these pages carry
        no change date we can trust, and conditional GET answers the question exactly.
        A detail page that keeps failing is skipped (logged; the next crawl asks again); an
        index page or robots.txt that cannot be read, or `MAX_FAILED_IN_A_ROW` detail pages
        failing in a row, stop the crawl (`SourceUnavailable`)."""
        seen: set[str] = set()
        failed_in_a_row = 0
        async for index in self._index_pages():
            for url in self._detail_links(index):
                if url in seen:
                    continue
                seen.add(url)
                try:
                    page = await self._page(url, conditional=True)
                except SourceUnavailable as exc:
                    failed_in_a_row += 1
                    if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                        raise SourceUnavailable(
                            f"{failed_in_a_row} listing pages in a row failed, the last: {exc}"
                        ) from exc
                    # Its validators are untouched: the next crawl asks for it again.
                    log.warning(
                        "listing_page_failed", source=self._source.slug, url=url, error=str(exc)
                    )
                    continue
                failed_in_a_row = 0
                if page is None:
                    continue
                canonical = _without_query(page.url)
                yield RawRecord(
                    source_key=urlsplit(canonical).path,
                    payload={"url": canonical, "html": page.text},
                    source_updated_at=_http_date(page.last_modified),
                )

    async def _index_pages(self) -> AsyncIterator[FetchResult]:
        url: str | None = self._index_url
        visited: set[str] = set()
        while url is not None and url not in visited and len(visited) < self._options.max_pages:
            visited.add(url)
            page = await self._page(url, conditional=False)
            if page is None:
                return
            yield page
            url = self._next_link(page)

    def _detail_links(self, index: FetchResult) -> list[str]:
        tree = LexborHTMLParser(index.text or "")
        links = [
            _without_query(urljoin(index.url, href))
            for a in tree.css("a.result-link")
            if (href := a.attributes.get("href"))
        ]
        if not links:
            log.warning("listing_index_empty", source=self._source.slug, url=index.url)
        return [link for link in links if self._same_site(link)]

    def _next_link(self, index: FetchResult) -> str | None:
        tree = LexborHTMLParser(index.text or "")
        node = tree.css_first('a[rel~="next"]')
        href = node.attributes.get("href") if node is not None else None
        if not href:
            return None
        url = urljoin(index.url, href)
        return url if self._same_site(url) else None

    def parse(self, record: RawRecord) -> Candidate:
        """One detail page: price and address are required, every other field is optional."""
        url, tree = _read(record)
        found = _require(tree, ".listing-price", ".listing-address")
        address = found[".listing-address"]
        candidate = Candidate(
            kind="fsbo",
            full_name=_text(tree.css_first(".seller-contact .seller-name")),
            phone=_text(tree.css_first(".seller-contact .seller-phone")),
            email=_email(tree.css_first(".seller-contact .seller-email")),
            street=_text(address.css_first(".street")),
            city=_text(address.css_first(".city")),
            state=_text(address.css_first(".state")),
            postal_code=_text(address.css_first(".zip")),
            list_price=_text(found[".listing-price"]),
            listing_status=_text(tree.css_first(".listing-status")),
            description=_paragraphs(tree.css(".listing-description p")),
            market=self._source.market,
            extra={"listing_url": url, "title": _text(tree.css_first(".listing-title"))},
        )
        location = tree.css_first(".listing-map")
        if location is not None:
            candidate.latitude = location.attributes.get("data-lat")
            candidate.longitude = location.attributes.get("data-lng")
        _apply_facts(candidate, _dl_pairs(tree.css_first("dl.listing-facts")))
        return candidate


class ClassifiedsConnector(_ListingSite):
    """A classifieds site: one page of ads, each an `<article class="ad" id=...>` with a specs
    table and data-attributes. Each ad becomes one record keyed by its id."""

    async def fetch(self, since: datetime | None) -> AsyncIterator[RawRecord]:
        """Every ad on the index page, unless the page is unchanged since the last crawl
        (conditional GET). `since` is unused; each ad's posting time is its update time."""
        page = await self._page(self._index_url, conditional=True)
        if page is None:
            return
        ads = LexborHTMLParser(page.text or "").css("article.ad")
        if not ads:
            log.warning("listing_index_empty", source=self._source.slug, url=page.url)
        for ad in ads:
            ad_id = ad.attributes.get("id")
            if not ad_id:
                log.warning("listing_ad_without_id", source=self._source.slug, url=page.url)
                continue
            yield RawRecord(
                source_key=ad_id,
                payload={"url": page.url, "html": ad.html},
                source_updated_at=parse_datetime(ad.attributes.get("data-posted"), "posted")[0],
            )

    def parse(self, record: RawRecord) -> Candidate:
        """One ad: price and location are required. Ads posted by the owner are FSBO leads,
        ads by agents or dealers plain seller leads."""
        url, tree = _read(record)
        found = _require(tree, "article.ad", ".ad-price", ".ad-location")
        location = found[".ad-location"].attributes
        contact_node = tree.css_first(".ad-contact")
        contact = contact_node.attributes if contact_node is not None else {}
        poster_node = tree.css_first(".ad-poster")
        poster = poster_node.attributes.get("data-poster") if poster_node is not None else None
        title = tree.css_first(".ad-title a")
        href = title.attributes.get("href") if title is not None else None
        candidate = Candidate(
            kind="fsbo" if poster == "owner" else "seller",
            full_name=_clean(contact.get("data-name")),
            phone=_clean(contact.get("data-phone")),
            email=_clean(contact.get("data-email")),
            street=_clean(location.get("data-street")),
            city=_clean(location.get("data-city")),
            state=_clean(location.get("data-state")),
            postal_code=_clean(location.get("data-zip")),
            list_price=_text(found[".ad-price"]),
            description=_text(tree.css_first(".ad-body")),
            market=self._source.market,
            extra={
                "listing_url": urljoin(url, href) if href else url,
                "title": _text(title),
                "posted_by": poster,
            },
        )
        _apply_facts(candidate, _table_pairs(tree.css_first("table.ad-specs")))
        return candidate


# `SourceConfig.options["site"]` -> the connector class that reads that site.
LISTING_SITES: Final[dict[str, type[FsboSiteConnector] | type[ClassifiedsConnector]]] = {
    "fsbo": FsboSiteConnector,
    "classifieds": ClassifiedsConnector,
}


def _read(record: RawRecord) -> tuple[str, LexborHTMLParser]:
    url, html = record.payload.get("url"), record.payload.get("html")
    if not isinstance(html, str):
        raise ParseError("bad_payload", "payload.html is not a string", field="html")
    if not isinstance(url, str):
        raise ParseError("bad_payload", "payload.url is not a string", field="url")
    return url, LexborHTMLParser(html)


def _require(tree: LexborHTMLParser, *selectors: str) -> dict[str, LexborNode]:
    """The element for each selector; `layout_changed` naming every one that matched nothing."""
    found = {selector: tree.css_first(selector) for selector in selectors}
    missing = [selector for selector, node in found.items() if node is None]
    if missing:
        raise ParseError(
            "layout_changed", f"page layout changed: nothing matches {', '.join(missing)}"
        )
    return {selector: node for selector, node in found.items() if node is not None}


def _clean(value: str | None) -> str | None:
    """Whitespace collapsed; None when nothing is left."""
    text = " ".join(value.split()) if value else ""
    return text or None


def _text(node: LexborNode | None) -> str | None:
    return _clean(node.text(separator=" ")) if node is not None else None


def _paragraphs(nodes: Iterable[LexborNode]) -> str | None:
    texts = [text for node in nodes if (text := _text(node))]
    return "\n\n".join(texts) or None


def _email(node: LexborNode | None) -> str | None:
    """The address of a mailto: link (its text is often "Email the owner"), else the text."""
    if node is None:
        return None
    href = node.attributes.get("href") or ""
    if href.lower().startswith("mailto:"):
        return _clean(unquote(href[len("mailto:") :].split("?", 1)[0]))
    return _text(node)


def _dl_pairs(dl: LexborNode | None) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    label: str | None = None
    for child in dl.iter(include_text=False) if dl is not None else ():
        if child.tag == "dt":
            label = _text(child)
        elif child.tag == "dd" and label:
            pairs.append((label, _text(child)))
    return pairs


def _table_pairs(table: LexborNode | None) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for row in table.css("tr") if table is not None else ():
        label = _text(row.css_first("th"))
        if label:
            pairs.append((label, _text(row.css_first("td"))))
    return pairs


def _apply_facts(candidate: Candidate, pairs: Iterable[tuple[str, str | None]]) -> None:
    """Known facts onto their fields; the rest (HOA, garage ...) kept in `extra["facts"]`."""
    others: dict[str, str | None] = {}
    for label, value in pairs:
        name = FACT_FIELDS.get(label.rstrip(":").strip().lower())
        if name is None:
            others[label] = value
        else:
            setattr(candidate, name, value)
    if others:
        candidate.extra["facts"] = others


def _without_query(url: str) -> str:
    """The URL without query or fragment: tracking parameters do not make a new listing."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _http_date(value: str | None) -> datetime | None:
    try:
        return _utc(parsedate_to_datetime(value)) if value else None
    except (TypeError, ValueError):
        return None


def _utc(when: datetime) -> datetime:
    """UTC-aware; a time without a zone is taken to be UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
