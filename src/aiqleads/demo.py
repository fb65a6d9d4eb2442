"""Demo data for a first `make run`: accounts, and generated leads ingested through the real
pipeline (four launch markets, real ZIPs, duplicates across sources, some fraud)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.schemas import UserPatch
from aiqleads.accounts.service import AccountService
from aiqleads.ingest.connectors.base import RawRecord
from aiqleads.ingest.models import IngestionRun
from aiqleads.ingest.service import run_source
from aiqleads.ingest.synthetic import DEMO_SOURCES, generate
from aiqleads.leads.repository import LeadRepository
from aiqleads.ledger.models import AccountKind, TransactionKind
from aiqleads.ledger.service import Ledger, Leg
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
# The demo agent starts with $1,000 of credits (one credit buys one cent of a lead's price),
# granted once: the grant's reference makes a second load find it posted.
DEMO_CREDITS = 100_000


@dataclass(frozen=True)
class DemoResult:
    accounts: list[DemoAccount]
    runs: list[IngestionRun]


async def _welcome_credits(session: AsyncSession, runtime: Runtime, user_id: uuid.UUID) -> None:
    ledger = Ledger(session)
    now = runtime.clock.now()
    if await ledger.posted(TransactionKind.GRANT, "demo-welcome"):
        return
    await ledger.post(
        TransactionKind.GRANT,
        [
            Leg(await ledger.account(AccountKind.GRANTS, now), -DEMO_CREDITS),
            Leg(await ledger.credits(user_id, now), DEMO_CREDITS),
        ],
        now,
        reference="demo-welcome",
        memo="Demo credits",
    )


async def is_empty(runtime: Runtime) -> bool:
    """No leads yet (a fresh database, or one with accounts only)."""
    async with runtime.transaction(write=False) as session:
        return await LeadRepository(session).count() == 0


async def load(
    runtime: Runtime,
    *,
    count: int = 2000,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Create the demo operator and agent, then ingest `count` generated records, idempotently
    (the same seed yields the same records, which a second load finds unchanged)."""
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
                await _welcome_credits(session, runtime, user.id)
    by_source: dict[str, list[RawRecord]] = defaultdict(list)
    for item in generate(count, seed=seed, now=runtime.clock.now()):
        by_source[item.source].append(item.record)
    runs = []
    for slug in DEMO_SOURCES:
        source = runtime.sources.get(slug)
        if source is None or not by_source[slug]:
            continue
        runs.append(
            await run_source(
                runtime, source, trigger="demo", records=by_source[slug], progress=progress
            )
        )
    return DemoResult(list(DEMO_ACCOUNTS), runs)
