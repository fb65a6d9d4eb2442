"""Migration 0028: disputes filed before findings were worded without contact values get their
stored evidence reworded, as findings are worded now."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from aiqleads.disputes.models import Dispute
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.migrate import alembic_config, upgrade
from aiqleads.runtime import Runtime
from tests.commerce import buyers, funded
from tests.conftest import Api
from tests.disputes.test_disputes import DISPUTES, TOLL_FREE, bought, dispute
from tests.search.factories import add_leads, lead_row

BEFORE = "0027"

# How each lead's findings were worded before 0028: (phone, e-mail, fraud) details.
LEADS_AND_OLD_DETAILS: list[tuple[dict[str, Any], tuple[str, str, str | None]]] = [
    (
        {"phone": TOLL_FREE, "email": "maria.delgado@gmail.com", "last_name": "Zzzyx"},
        (
            f"{TOLL_FREE} is a toll_free number",
            "maria.delgado@gmail.com is valid",
            "the name 'Maria Zzzyx' looks made up",
        ),
    ),
    (
        {"phone": "+15550100", "email": "maria.delgado@gmail"},
        (
            "'+15550100' is not a valid number",
            "'maria.delgado@gmail': The part after the @-sign is not valid. "
            "It should have a period.",
            None,
        ),
    ),
    (
        {"email": "maria@mailinator.com"},
        (
            "+17025550143 is a valid fixed_line_or_mobile number",
            "mailinator.com is disposable",
            None,
        ),
    ),
    ({"phone": None}, ("the lead has no phone number", "maria.delgado@example.com is valid", None)),
]
CONTACTS = ("+18005550199", "+15550100", "+17025550143", "maria", "gmail", "mailinator", "Zzzyx")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite database of its own: the test stores disputes worded the old way, takes it
    back to before 0028 and upgrades it again."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
    upgrade(url)
    return url


def _worded_before(evidence: list[dict[str, Any]], old: tuple[str, str, str | None]) -> Any:
    phone, email, fraud = old
    rewritten = []
    for finding in evidence:
        detail = {"phone": phone, "email": email, "fraud": fraud}.get(finding["check"])
        rewritten.append({**finding, "detail": detail or finding["detail"]})
    return rewritten


@pytest.mark.no_scheduler
async def test_upgrading_rewords_stored_evidence_without_contact_values(
    api: Api, runtime: Runtime, clock: FrozenClock, database_url: str
) -> None:
    (buyer,) = await buyers(runtime, 1)
    await funded(runtime, buyer, 1_000_000)
    leads = await add_leads(
        runtime, *(lead_row(clock.now(), **fields) for fields, _ in LEADS_AND_OLD_DETAILS)
    )
    by_lead = {p["lead"]["id"]: p for p in await bought(api, runtime, buyer, *leads)}
    filed: dict[uuid.UUID, list[dict[str, Any]]] = {}
    old_wording: dict[uuid.UUID, Any] = {}
    for lead, (_, old) in zip(leads, LEADS_AND_OLD_DETAILS, strict=True):
        answer = (await dispute(api.client, buyer, by_lead[str(lead.id)], "fake")).json()
        filed[uuid.UUID(answer["id"])] = answer["evidence"]
        old_wording[uuid.UUID(answer["id"])] = _worded_before(answer["evidence"], old)
    async with runtime.transaction() as session:  # as disputes were stored before 0028
        for dispute_id, evidence in old_wording.items():
            await session.execute(
                sa.update(Dispute).where(Dispute.id == dispute_id).values(evidence=evidence)
            )
    async with runtime.transaction(write=False) as session:
        stored = (await session.execute(sa.select(Dispute.evidence))).scalars().all()
    assert any(TOLL_FREE in f["detail"] for evidence in stored for f in evidence)
    # Nothing of the app may hold the file while the migration rebuilds tables: the demand
    # events of the requests above are written now, and the jobs they queued have run.
    await runtime.demand.flush()
    await runtime.jobs.wait_idle()
    await runtime.db.engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), BEFORE)

    await asyncio.to_thread(upgrade, database_url)

    shown = (await api.client.get(DISPUTES, headers=buyer)).json()["items"]
    assert {uuid.UUID(d["id"]): d["evidence"] for d in shown} == filed
    text = str([d["evidence"] for d in shown])
    for value in CONTACTS:
        assert value not in text, value
