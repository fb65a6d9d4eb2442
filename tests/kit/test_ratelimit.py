"""Per-plan API rate limits: a sliding minute, in-process or shared through Redis; 429 with
Retry-After beyond the limit, X-RateLimit-* headers always."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from aiqleads.accounts.models import User
from aiqleads.app import create_app
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.ratelimit import MemoryLimiter, RateLimiter, RedisLimiter
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.commerce import buyers, signed_in_again, user_of
from tests.conftest import TEST_SECRET, Api

REDIS_URL = os.environ.get("AIQLEADS_TEST_REDIS_URL")
STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORES)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryLimiter()
        return
    assert REDIS_URL
    async with Redis.from_url(REDIS_URL) as redis:
        yield RedisLimiter(redis)


async def test_the_window_slides_rather_than_resets(limiter: RateLimiter) -> None:
    key = uuid.uuid4().hex
    answers = [await limiter.hit(key, 3, 60, t) for t in (0.0, 10.0, 20.0, 30.0, 59.0)]
    assert [a.allowed for a in answers] == [True, True, True, False, False]
    assert [a.remaining for a in answers] == [2, 1, 0, 0, 0]
    assert answers[3].reset_seconds == 30  # the request at 0 leaves the window at 60
    assert answers[3].retry_after == "30"
    # At 60 the first request has left the window; the two of 10 and 20 are still in it,
    # so one slot is free, not three (a fixed window would allow a burst here).
    at_60 = await limiter.hit(key, 3, 60, 60.0)
    assert (at_60.allowed, at_60.remaining) == (True, 0)
    assert not (await limiter.hit(key, 3, 60, 61.0)).allowed
    assert (await limiter.hit(key, 3, 60, 70.0)).allowed  # 10 left at 70
    assert (await limiter.hit(uuid.uuid4().hex, 3, 60, 61.0)).remaining == 2  # keys apart


async def test_retry_after_holds_after_the_limit_is_lowered(limiter: RateLimiter) -> None:
    """A Pro account falls to Basic with more requests in its window than Basic allows: the
    Retry-After it is given is when a request goes through, in both stores."""
    key = uuid.uuid4().hex
    for t in (0.0, 10.0, 20.0, 30.0, 40.0):
        assert (await limiter.hit(key, 5, 60, t)).allowed
    refused = await limiter.hit(key, 2, 60, 45.0)
    assert not refused.allowed
    assert refused.retry_after == "45"  # the request of 30 leaves the window at 90
    assert not (await limiter.hit(key, 2, 60, 89.0)).allowed
    assert (await limiter.hit(key, 2, 60, 90.0)).allowed


async def test_concurrent_requests_cannot_share_the_last_slot(limiter: RateLimiter) -> None:
    key = uuid.uuid4().hex
    answers = await asyncio.gather(*(limiter.hit(key, 10, 60, 100.0) for _ in range(50)))
    assert sum(a.allowed for a in answers) == 10


async def test_the_memory_store_forgets_idle_accounts() -> None:
    limiter = MemoryLimiter()
    limiter.PRUNE_EVERY = 5
    for n in range(4):
        await limiter.hit(f"idle-{n}", 10, 60, 0.0)
    await limiter.hit("active", 10, 60, 100.0)  # the fifth hit prunes
    assert list(limiter._log) == ["active"]


async def test_the_memory_store_keeps_a_longer_windows_counts_through_a_prune() -> None:
    """Hourly counters (unsolicited mail) outlive a prune made by a minute's request."""
    limiter = MemoryLimiter()
    limiter.PRUNE_EVERY = 3
    assert (await limiter.hit("mail", 1, 3600, 0.0)).allowed
    for n in range(3):  # the third of these prunes, 100 s on
        await limiter.hit(f"api-{n}", 100, 60, 100.0)
    assert not (await limiter.hit("mail", 1, 3600, 200.0)).allowed


async def test_a_basic_agent_gets_100_requests_a_minute_then_429(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    (agent,) = await buyers(runtime, 1)
    first = await api.client.get("/api/v1/cart", headers=agent)
    assert first.headers["X-RateLimit-Limit"] == "100"
    assert first.headers["X-RateLimit-Remaining"] == "99"
    for _ in range(99):
        assert (await api.client.get("/api/v1/cart", headers=agent)).status_code == 200
    refused = await api.client.get("/api/v1/cart", headers=agent)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    (other,) = await buyers(runtime, 1)  # budgets are per account
    # Every answer carries the headers: a streamed file too.
    export = await api.client.get("/api/v1/purchases/export.csv", headers=other)
    assert export.headers["X-RateLimit-Remaining"] == "99"
    assert (await api.client.get("/api/v1/cart", headers=other)).status_code == 200
    # and so does an error after the caller was counted.
    missing = await api.client.get(f"/api/v1/purchases/{uuid.uuid4()}", headers=other)
    assert missing.status_code == 404
    assert missing.headers["X-RateLimit-Remaining"] == "97"

    clock.advance(timedelta(seconds=60))
    agent = await signed_in_again(runtime, agent)
    again = await api.client.get("/api/v1/cart", headers=agent)
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "99"


async def test_plans_and_operators_set_the_limit(api: Api, runtime: Runtime) -> None:
    (pro,) = await buyers(runtime, 1, plan="pro")
    assert (await api.client.get("/api/v1/cart", headers=pro)).headers["X-RateLimit-Limit"] == "500"
    (enterprise,) = await buyers(runtime, 1, plan="enterprise")
    ops = await api.admin()
    url = f"/api/v1/admin/users/{user_of(enterprise)}/rate-limit"
    custom = await api.client.put(url, json={"per_minute": 3}, headers=ops.auth)
    assert custom.status_code == 200, custom.text
    assert custom.json() == {
        "user_id": str(user_of(enterprise)),
        "plan": "enterprise",
        "per_minute": 3,
        "custom": True,
    }
    codes = [
        (await api.client.get("/api/v1/cart", headers=enterprise)).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    reset = await api.client.put(url, json={"per_minute": None}, headers=ops.auth)
    assert reset.json()["per_minute"] == 2000
    assert (await api.client.get("/api/v1/cart", headers=enterprise)).status_code == 200
    bad = await api.client.put(url, json={"per_minute": 0}, headers=ops.auth)
    assert bad.status_code == 422
    agent = await api.signup("agent@realty.example.com")
    forbidden = await api.client.put(url, json={"per_minute": 9}, headers=agent.auth)
    assert forbidden.status_code == 403


@pytest.mark.redis
async def test_processes_share_one_budget_through_redis(
    database_url: str, clock: FrozenClock
) -> None:
    """Two API processes (two apps) count one account's requests together."""
    assert REDIS_URL
    settings = Settings(
        env="test", database_url=database_url, secret_key=TEST_SECRET, redis_url=REDIS_URL
    )
    first, second = create_app(settings, clock), create_app(settings, clock)
    async with LifespanManager(first), LifespanManager(second):
        runtime: Runtime = first.state.runtime
        assert isinstance(runtime.limiter, RedisLimiter)
        (agent,) = await buyers(runtime, 1)
        async with runtime.transaction() as session:
            user = await session.get(User, user_of(agent))
            assert user is not None
            user.rate_limit_per_minute = 4
        codes = []
        for app in (first, second, first, second, first):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                codes.append((await client.get("/api/v1/cart", headers=agent)).status_code)
        assert codes == [200, 200, 200, 200, 429]


async def test_sign_in_requests_are_limited_per_client_address(
    api: Api, clock: FrozenClock
) -> None:
    """Each of these hashes or checks a password (or mails) before anyone is signed in: one
    client address gets 30 a minute across them, then 429 until the minute has passed."""
    email = "agent@realty.example.com"
    account = await api.signup(email)  # register, verify, login: three
    codes = [(await api.login(email, "wrong password!")).status_code for _ in range(4)]
    assert codes == [401] * 4  # below the lockout, which is per address, not per client
    for n in range(23):
        assert (await api.register(f"new{n}@realty.example.com")).status_code == 202
    refused = await api.login(email)  # the 31st
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["X-RateLimit-Limit"] == "30"
    reset = await api.client.post("/api/v1/auth/password-reset/request", json={"email": email})
    assert reset.status_code == 429
    # Signed-in requests count against the account's own budget, not the address's.
    assert (await api.client.get("/api/v1/users/me", headers=account.auth)).status_code == 200
    clock.advance(timedelta(seconds=61))
    assert (await api.login(email)).status_code == 200
