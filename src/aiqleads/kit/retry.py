"""Retry timing shared by everything that retries (e-mail, deliveries, webhooks)."""

from __future__ import annotations

from datetime import timedelta


def backoff(
    attempt: int, base: timedelta = timedelta(seconds=30), cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """Exponential delay before attempt `attempt + 1`: base, 2*base, 4*base ... capped."""
    delay: timedelta = base * (2 ** max(attempt - 1, 0))
    return min(delay, cap)
