"""Buyers for commerce tests: verified agents signed in, funded, and helpers to read them back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import jwt
import sqlalchemy as sa

from aiqleads.accounts.models import Role, User
from aiqleads.accounts.schemas import NotificationPreferences
from aiqleads.accounts.tokens import issue_access_token
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead
from aiqleads.runtime import Runtime
from tests.conftest import bearer
from tests.ledger.test_ledger import fund

ITEMS = "/api/v1/cart/items"


def agent(now: datetime, name: str = "Buyer", plan: str = "basic") -> User:
    """A verified agent, not yet stored."""
    return User(
        id=uuid.uuid4(),
        email=f"{name.lower().replace(' ', '')}-{uuid.uuid4().hex[:6]}@realty.example.com",
        name=name,
        password_hash="unused",
        role=Role.AGENT,
        plan=plan,
        preferred_markets=[],
        notification_preferences=NotificationPreferences().model_dump(),
        time_zone="UTC",
        session_version=1,
        email_verified_at=now,
        created_at=now,
        updated_at=now,
    )


async def buyers(runtime: Runtime, n: int, plan: str = "basic") -> list[dict[str, str]]:
    """`n` verified agents on `plan`, each as the headers of a signed-in request."""
    now = runtime.clock.now()
    users = [agent(now, f"Buyer {i}", plan) for i in range(n)]
    async with runtime.transaction() as session:
        session.add_all(users)
    return [bearer(issue_access_token(runtime.settings, u.id, u.role.value, 1, now)) for u in users]


def user_of(auth: dict[str, str]) -> uuid.UUID:
    token = auth["Authorization"].removeprefix("Bearer ")
    return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sub"])


async def signed_in_again(runtime: Runtime, auth: dict[str, str]) -> dict[str, str]:
    """A fresh access token for the holder of `auth` (whose token may have expired)."""
    return bearer(
        issue_access_token(runtime.settings, user_of(auth), "agent", 1, runtime.clock.now())
    )


async def funded(runtime: Runtime, auth: dict[str, str], credits: int) -> dict[str, str]:
    await fund(runtime, user_of(auth), credits)
    return auth


async def lead_status(runtime: Runtime, lead_id: uuid.UUID) -> LeadStatus:
    async with runtime.transaction(write=False) as session:
        status = await session.scalar(sa.select(Lead.status).where(Lead.id == lead_id))
    assert status is not None
    return status


async def add(client: httpx.AsyncClient, auth: dict[str, str], lead: Lead) -> httpx.Response:
    return await client.post(ITEMS, json={"lead_id": str(lead.id)}, headers=auth)


async def cart(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/cart", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    response = await client.get("/api/v1/credits", headers=auth)
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])
