"""Old lockout counters and dead tokens are forgotten; live ones are kept."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from aiqleads.accounts.models import EmailToken, LoginThrottle, RefreshToken
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.jobs import REGISTRY
from aiqleads.runtime import JobContext, Runtime
from tests.conftest import Api


async def _count(runtime: Runtime, model: type) -> int:
    async with runtime.transaction(write=False) as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def test_prune_forgets_idle_counters_and_expired_tokens(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    await api.signup("pat@agents.example.com")
    await api.login("stranger@agents.example.com", "wrong password")
    for _ in range(5):
        await api.login("locked@agents.example.com", "wrong password")
    prune = REGISTRY["accounts.prune"]

    await prune.fn(JobContext(runtime))
    assert await _count(runtime, LoginThrottle) == 2  # fresh: kept

    clock.advance(timedelta(days=1, minutes=1))
    await prune.fn(JobContext(runtime))
    assert await _count(runtime, LoginThrottle) == 0
    assert await _count(runtime, EmailToken) == 1  # expired a minute ago: kept a day longer
    assert await _count(runtime, RefreshToken) == 1  # the session is still valid

    clock.advance(timedelta(days=31))
    await prune.fn(JobContext(runtime))
    assert await _count(runtime, EmailToken) == 0
    assert await _count(runtime, RefreshToken) == 0
