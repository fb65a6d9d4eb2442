"""Migration 0025: leads stored before names were redacted as written get their masked
description and search words redacted again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from aiqleads.kit.migrate import upgrade
from aiqleads.leads.models import Lead
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.conftest import TEST_SECRET
from tests.search.factories import add_leads, lead_row

LEAKED = "Owner Sean McDonald wants a quick sale"


async def test_upgrading_redacts_names_written_with_an_inner_capital(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
    await asyncio.to_thread(upgrade, url, "0024")
    runtime = Runtime(Settings(env="test", database_url=url, secret_key=TEST_SECRET))
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    mcdonald = lead_row(now, first_name="Sean", last_name="McDonald", description=LEAKED)
    plain = lead_row(now, first_name="Maria", last_name="Delgado", description="Ask Maria")
    obrien = lead_row(now, first_name="Pat", last_name="O'Brien", description="call o'brien")
    await add_leads(runtime, mcdonald, plain, obrien)
    async with runtime.transaction() as session:  # as the redaction before 0025 left them
        await session.execute(
            sa.update(Lead)
            .where(Lead.id == mcdonald.id)
            .values(public_description="Owner [hidden] McDonald", search_text="mcdonald")
        )
        await session.execute(
            sa.update(Lead).where(Lead.id == obrien.id).values(public_description="call o'brien")
        )
    await runtime.db.engine.dispose()

    await asyncio.to_thread(upgrade, url)

    runtime = Runtime(Settings(env="test", database_url=url, secret_key=TEST_SECRET))
    async with runtime.transaction(write=False) as session:
        rows = dict((await session.execute(sa.select(Lead.id, Lead.public_description))).all())
        found = await session.scalar(
            sa.text("SELECT count(*) FROM leads_fts WHERE leads_fts MATCH 'mcdonald'")
        )
    await runtime.db.engine.dispose()
    assert rows[mcdonald.id] == "Owner [hidden] [hidden] wants a quick sale"
    assert rows[plain.id] == "Ask [hidden]"
    assert rows[obrien.id] == "call [hidden]"
    assert found == 0
