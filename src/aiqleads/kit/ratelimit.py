"""Sliding-window rate limits: at most `limit` requests in any `window` seconds.

A sliding log, not fixed windows: a client cannot send twice its limit across a window's edge.
Each key keeps the times of its recent requests (at most `limit` of them); a request is
allowed when fewer than `limit` fall inside the window ending now. Two stores:

- `MemoryLimiter`, the default: one process, a deque per key.
- `RedisLimiter`, when Redis is configured: a sorted set per key, trimmed, counted and added
  to by one Lua script, so every API process shares the budget and two requests cannot both
  take the last slot.

Time comes from the caller (the runtime's injectable clock), not from the store, so tests move
it. Hand-written rather than from `limits`, which reads the wall clock itself.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the oldest request in the window leaves it

    @property
    def retry_after(self) -> str:
        """`Retry-After` of a refused request, in whole seconds (at least one)."""
        return str(max(self.reset_seconds, 1))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }


def _decision(
    allowed: bool, limit: int, used: int, oldest: float, now: float, window: float
) -> Decision:
    reset = max(0, math.ceil(oldest + window - now)) if used else 0
    return Decision(allowed, limit, max(limit - used, 0), reset)


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: float, now: float) -> Decision: ...


class MemoryLimiter:
    # Every this many hits, keys idle for a whole window are forgotten (memory stays bounded
    # by the accounts active in the last window).
    PRUNE_EVERY = 10_000

    def __init__(self) -> None:
        self._log: dict[str, deque[float]] = {}
        self._longest = 0.0
        self._hits = 0

    def _prune(self, now: float) -> None:
        # With the longest window any key uses: pruning with the caller's own (a minute) once
        # forgot hourly counters idle for a minute.
        for key in [k for k, times in self._log.items() if times[-1] <= now - self._longest]:
            del self._log[key]

    async def hit(self, key: str, limit: int, window: float, now: float) -> Decision:
        self._hits += 1
        self._longest = max(self._longest, window)
        if self._hits % self.PRUNE_EVERY == 0:
            self._prune(now)
        times = self._log.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        while len(times) > limit:  # the limit was lowered
            times.popleft()
        allowed = len(times) < limit
        if allowed:
            times.append(now)
        decision = _decision(allowed, limit, len(times), times[0] if times else now, now, window)
        if not times:
            del self._log[key]
        return decision


# KEYS[1] the key; ARGV: now, window, limit, member. Returns {allowed, used, oldest}.
_SCRIPT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
if used > limit then -- the limit was lowered: keep the newest `limit`, as the memory store does
  redis.call('ZREMRANGEBYRANK', key, 0, used - limit - 1)
  used = limit
end
local allowed = 0
if used < limit then
  redis.call('ZADD', key, now, ARGV[4])
  used = used + 1
  allowed = 1
end
redis.call('PEXPIRE', key, math.ceil(window * 1000))
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {allowed, used, oldest[2] or ARGV[1]}
"""


class RedisLimiter:
    PREFIX = "aiqleads:ratelimit:"

    def __init__(self, redis: Redis) -> None:
        self._script: Any = redis.register_script(_SCRIPT)

    async def hit(self, key: str, limit: int, window: float, now: float) -> Decision:
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        allowed, used, oldest = await self._script(
            keys=[self.PREFIX + key], args=[repr(now), repr(window), limit, member]
        )
        return _decision(bool(allowed), limit, int(used), float(oldest), now, window)
