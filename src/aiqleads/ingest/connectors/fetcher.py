"""Fetching web pages the way a good crawler does: robots.txt first (RFC 9309), one request per
host at a polite pace, retries with backoff, and conditional GETs so an unchanged page costs a
304 instead of a download.

A URL that robots.txt forbids raises `Disallowed` rather than returning a result: skipping it
is then a visible decision of the caller, never a page that silently looks empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import structlog

from aiqleads.ingest.connectors.http import Sleep, SourceUnavailable, send_with_retry

log = structlog.get_logger(__name__)

Monotonic = Callable[[], float]
# URL -> the validators it was last served with: {"etag": ..., "last_modified": ...}, either
# key may be absent. Callers persist this between runs to make the next crawl conditional.
Validators = dict[str, dict[str, str]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# RFC 9309 §2.3.1.2: follow at least five consecutive redirects.
MAX_REDIRECTS = 5
# What a robots.txt we may not read means: stay out.
_STAY_OUT = ["User-agent: *", "Disallow: /"]


class Disallowed(Exception):
    """robots.txt does not let us fetch `url` (or a URL it redirected to)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"robots.txt disallows {url}")
        self.url = url


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One page as fetched. `url` is the final URL after redirects; a 304 has no text."""

    url: str
    status: int
    text: str | None
    not_modified: bool
    etag: str | None
    last_modified: str | None


@dataclass(slots=True)
class _Origin:
    """What we know about one scheme://host:port: its robots rules and when we last asked."""

    interval: float
    robots: RobotFileParser | None = None
    last_request: float | None = None
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    turn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class PoliteFetcher:
    """GET pages the way site owners ask: robots.txt rules, a pace per host, conditional GET.

    Pace: requests to one origin (retries included) start at least `min_interval` seconds
    apart, or the robots.txt `Crawl-delay` / `Request-rate` for our agent when that is longer.
    `validators` is mutated in place, so a caller that passes in a stored dict can store it back.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        user_agent: str,
        min_interval: float = 1.0,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        validators: Validators | None = None,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self._client = client
        self._user_agent = user_agent
        self._min_interval = min_interval
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._validators: Validators = {} if validators is None else validators
        self._monotonic = monotonic
        self._sleep = sleep
        self._origins: dict[str, _Origin] = {}

    @property
    def validators(self) -> Validators:
        """ETag / Last-Modified per URL, as last served; persist it to keep crawls conditional."""
        return self._validators

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our user agent fetch `url` (reads robots.txt once per origin)."""
        robots = await self._robots(url)
        return robots.can_fetch(self._user_agent, url)

    async def fetch(self, url: str, *, conditional: bool = True) -> FetchResult:
        """GET `url`. With `conditional`, send the validators we hold and remember new ones.

        Raises `Disallowed` when robots.txt forbids the URL or a redirect target, and
        `SourceUnavailable` when the host keeps failing. Other statuses are returned as-is.
        """
        final_url, response = await self._get(url, conditional=conditional, obey_robots=True)
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        not_modified = response.status_code == 304
        if conditional and (response.status_code == 200 or not_modified):
            known = self._validators.get(final_url, {}) if not_modified else {}
            fresh = {
                **known,
                **{k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v},
            }
            if fresh:
                self._validators[final_url] = fresh
            else:
                self._validators.pop(final_url, None)
            etag, last_modified = fresh.get("etag"), fresh.get("last_modified")
        return FetchResult(
            url=final_url,
            status=response.status_code,
            text=None if not_modified else response.text,
            not_modified=not_modified,
            etag=etag,
            last_modified=last_modified,
        )

    async def _get(
        self, url: str, *, conditional: bool, obey_robots: bool
    ) -> tuple[str, httpx.Response]:
        """The final URL and response, following redirects by hand so every hop is paced and
        checked against robots. After too many redirects, or a redirect to another origin
        (scheme, host, port), the last 3xx is returned as-is: a site must not steer us to
        hosts it does not own (an internal address whose answer we would store and show)."""
        origin = _origin_key(url)
        for hop in range(MAX_REDIRECTS + 1):
            if obey_robots and not await self.allowed(url):
                raise Disallowed(url)
            headers = {"User-Agent": self._user_agent}
            known = self._validators.get(url, {}) if conditional else {}
            if "etag" in known:
                headers["If-None-Match"] = known["etag"]
            if "last_modified" in known:
                headers["If-Modified-Since"] = known["last_modified"]
            response = await self._send(url, headers)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return url, response
            if hop == MAX_REDIRECTS:
                break
            target = urljoin(url, location)
            if _origin_key(target) != origin:
                log.warning("fetch_redirect_off_site", url=url, location=target)
                return url, response
            url = target
        log.warning("fetch_too_many_redirects", url=url)
        return url, response

    async def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        origin = self._origin(url)

        async def pause(delay: float) -> None:
            # A retry is a request too: back off as asked, then keep the host's pace.
            await self._sleep(delay)
            await self._wait_turn(origin)

        await self._wait_turn(origin)
        request = self._client.build_request("GET", url, headers=headers)
        return await send_with_retry(
            self._client,
            request,
            max_attempts=self._max_attempts,
            base_delay=self._base_delay,
            sleep=pause,
        )

    async def _wait_turn(self, origin: _Origin) -> None:
        async with origin.turn_lock:
            if origin.last_request is not None:
                wait = origin.last_request + origin.interval - self._monotonic()
                if wait > 0:
                    await self._sleep(wait)
            origin.last_request = self._monotonic()

    def _origin(self, url: str) -> _Origin:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        if key not in self._origins:
            self._origins[key] = _Origin(interval=self._min_interval)
        return self._origins[key]

    async def _robots(self, url: str) -> RobotFileParser:
        origin = self._origin(url)
        async with origin.robots_lock:
            if origin.robots is None:
                parts = urlsplit(url)
                origin.robots = await self._load_robots(f"{parts.scheme}://{parts.netloc}")
                origin.interval = max(
                    self._min_interval, _robots_interval(origin.robots, self._user_agent)
                )
            return origin.robots

    async def _load_robots(self, base: str) -> RobotFileParser:
        """Read robots.txt (RFC 9309): 2xx rules apply; other 4xx and too many redirects mean
        no rules; 5xx stops the crawl of this host (SourceUnavailable). RFC 9309 would also let
        401/403 mean "no rules"; like urllib.robotparser we read them as "stay out", since a
        site that locks its robots.txt away is not inviting crawlers. Anything else: stay out."""
        robots_url = f"{base}/robots.txt"
        robots = RobotFileParser(robots_url)
        _, response = await self._get(robots_url, conditional=False, obey_robots=False)
        status = response.status_code
        if status >= 500:
            raise SourceUnavailable(f"{robots_url} answered {status}")
        if 200 <= status < 300:
            lines = response.text.splitlines()
        elif status in (401, 403):
            lines = _STAY_OUT
        elif status >= 400 or status in REDIRECT_STATUSES:
            lines = []
        else:
            lines = _STAY_OUT
        robots.parse(lines)
        log.info("robots_loaded", url=robots_url, status=status)
        return robots


def _origin_key(url: str) -> tuple[str, str, int | None] | None:
    """Scheme, host and port of `url` (a default port as None, so :443 equals no port);
    None for a URL that cannot be read."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed.scheme, parsed.host, parsed.port


def _robots_interval(robots: RobotFileParser, user_agent: str) -> float:
    """Seconds between requests that robots.txt asks of our agent (0 when it asks nothing)."""
    delay = robots.crawl_delay(user_agent)
    rate = robots.request_rate(user_agent)
    interval = float(delay) if delay is not None else 0.0
    if rate is not None and rate.requests > 0:
        interval = max(interval, rate.seconds / rate.requests)
    return interval
