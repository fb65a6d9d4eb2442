"""Idempotency-Key on a state-changing commerce endpoint (the credit grant): a retry is answered
without being done again, on both dialects."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.idempotency import IdempotencyKey, forget_old
from aiqleads.ledger.models import LedgerTransaction
from aiqleads.runtime import Runtime
from tests.conftest import Account, Api
from tests.ledger.test_ledger import GRANT, credits_of, reconcile, user_id


async def grant(
    api: Api, ops: Account, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = dict(ops.auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.client.post(GRANT, json=body, headers=headers)


async def grants(runtime: Runtime) -> int:
    async with runtime.transaction(write=False) as session:
        return int(
            await session.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction)) or 0
        )


async def setup(api: Api, runtime: Runtime) -> tuple[Account, Account, dict[str, Any]]:
    agent = await api.signup("agent@realty.example.com")
    ops = await api.admin()
    body = {"user_id": str(await user_id(runtime, agent.email)), "credits": 100, "reason": "wire"}
    return agent, ops, body


async def test_the_same_request_again_is_answered_not_redone(api: Api, runtime: Runtime) -> None:
    agent, ops, body = await setup(api, runtime)
    first = await grant(api, ops, body, "grant-0001")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # The same JSON differently ordered is the same request.
    again = await grant(api, ops, dict(reversed(list(body.items()))), "grant-0001")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (await credits_of(api, agent))["balance"] == 100
    assert await grants(runtime) == 1
    # Without a key, a second request is a second grant.
    assert (await grant(api, ops, body)).status_code == 201
    assert (await credits_of(api, agent))["balance"] == 200


async def test_a_key_reused_for_another_request_is_refused(api: Api, runtime: Runtime) -> None:
    agent, ops, body = await setup(api, runtime)
    assert (await grant(api, ops, body, "k1")).status_code == 201
    other = await grant(api, ops, {**body, "credits": 999}, "k1")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_mismatch"
    assert (await credits_of(api, agent))["balance"] == 100


async def test_a_failed_request_stores_nothing_and_the_key_can_be_used_again(
    api: Api, runtime: Runtime
) -> None:
    agent, ops, body = await setup(api, runtime)
    invalid = await grant(api, ops, {**body, "credits": -1}, "k2")
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "validation_error"
    nobody = await grant(api, ops, {**body, "user_id": str(uuid.uuid4())}, "k2")
    assert nobody.status_code == 404
    async with runtime.transaction(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
    done = await grant(api, ops, body, "k2")
    assert done.status_code == 201
    assert "Idempotent-Replayed" not in done.headers
    assert (await credits_of(api, agent))["balance"] == 100


async def test_twenty_concurrent_requests_with_one_key_grant_once(
    api: Api, runtime: Runtime
) -> None:
    agent, ops, body = await setup(api, runtime)
    answers = await asyncio.gather(*(grant(api, ops, body, "burst") for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses.count(201) >= 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["code"] == "idempotency_in_flight"
    transaction_ids = {a.json()["transaction_id"] for a in answers if a.status_code == 201}
    assert len(transaction_ids) == 1
    assert (await credits_of(api, agent))["balance"] == 100
    assert await grants(runtime) == 1
    assert await reconcile(runtime) == []


async def test_keys_belong_to_their_caller_and_are_kept_a_day(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent, ops, body = await setup(api, runtime)
    other_ops = await api.admin("ops2@aiqleads.example.com")
    assert (await grant(api, ops, body, "shared-key")).status_code == 201
    second = await grant(api, other_ops, body, "shared-key")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert (await credits_of(api, agent))["balance"] == 200

    clock.advance(timedelta(hours=23))
    async with runtime.transaction() as session:
        assert await forget_old(session, clock.now()) == 0
    clock.advance(timedelta(hours=2))
    async with runtime.transaction() as session:
        assert await forget_old(session, clock.now()) == 2


async def test_a_malformed_key_is_refused(api: Api, runtime: Runtime) -> None:
    agent, ops, body = await setup(api, runtime)
    for key in ("x" * 256, "tab\there"):
        response = await grant(api, ops, body, key)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_idempotency_key"
    assert (await credits_of(api, agent))["balance"] == 0
