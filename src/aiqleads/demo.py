"""Demo data for a first `make run`: a stand-in until lead ingestion ships `demo load` data."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from aiqleads.accounts.models import User
from aiqleads.accounts.schemas import UserPatch
from aiqleads.accounts.service import AccountService
from aiqleads.runtime import Runtime


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    name: str
    admin: bool


DEMO_ACCOUNTS = (
    DemoAccount(
        "admin@demo.aiqleads.example.com", "demo-operator-passphrase", "Demo Operator", True
    ),
    DemoAccount("agent@demo.aiqleads.example.com", "demo-agent-passphrase", "Demo Agent", False),
)


async def is_empty(runtime: Runtime) -> bool:
    async with runtime.transaction(write=False) as session:
        count: int | None = await session.scalar(sa.select(sa.func.count()).select_from(User))
        return not count


async def load(runtime: Runtime) -> list[DemoAccount]:
    """Create the demo operator and a demo agent (verified, with markets), idempotently."""
    if runtime.settings.is_production:
        raise RuntimeError("demo data is never loaded in production")
    async with runtime.transaction() as session:
        service = AccountService(session, runtime)
        for account in DEMO_ACCOUNTS:
            user = await service.create_admin(account.email, account.password, account.name)
            if not account.admin:
                user.role = user.role.AGENT
                await service.update_profile(
                    user,
                    UserPatch(
                        preferred_markets=["las-vegas", "phoenix"], time_zone="America/Los_Angeles"
                    ),
                )
    return list(DEMO_ACCOUNTS)
