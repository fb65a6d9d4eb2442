"""HTTP with the manners every connector needs: retry 429/5xx/network errors with backoff,
honouring `Retry-After`, and a clear error when the source keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import structlog

from aiqleads.kit.retry import backoff

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 300.0


def _backoff_seconds(attempt: int, base_delay: float) -> float:
    cap = timedelta(seconds=MAX_RETRY_AFTER_SECONDS)
    return backoff(attempt, timedelta(seconds=base_delay), cap).total_seconds()


Sleep = Callable[[float], Awaitable[None]]


class SourceUnavailable(Exception):
    """The source kept failing after every retry; the run records it and stops cleanly."""


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or HTTP-date), capped; else None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delay, 0.0), MAX_RETRY_AFTER_SECONDS)


async def send_with_retry(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    max_attempts: int = 5,
    base_delay: float = 0.5,
    sleep: Sleep = asyncio.sleep,
) -> httpx.Response:
    """Send `request`, retrying what is worth retrying; other responses are returned as-is."""
    for attempt in range(1, max_attempts + 1):
        try:
            response = await client.send(request)
        except httpx.TransportError as exc:
            if attempt == max_attempts:
                raise SourceUnavailable(f"{request.url.host}: {exc!r}") from exc
            delay = _backoff_seconds(attempt, base_delay)
            log.warning("source_retry", host=request.url.host, error=repr(exc), delay=delay)
            await sleep(delay)
            continue
        if response.status_code not in RETRY_STATUSES:
            return response
        await response.aread()
        if attempt == max_attempts:
            raise SourceUnavailable(
                f"{request.url.host} answered {response.status_code} {max_attempts} times"
            )
        delay = retry_after_seconds(response) or _backoff_seconds(attempt, base_delay)
        log.warning("source_retry", host=request.url.host, status=response.status_code, delay=delay)
        await sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises
