"""Records pushed at the same moment (a web form submitted twice, a webhook delivered twice,
a consumer resubmitting a corrected form) become one lead, never two, and never a 500."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from aiqleads.ingest.models import SourceRecord
from aiqleads.leads.models import Lead
from aiqleads.runtime import Runtime
from tests.conftest import Api
from tests.ingest.test_endpoints import FORM_KEY, intake_body

URL = "/api/v1/intake/web-form"


@pytest.fixture(autouse=True)
def form_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web form's API key, as the sources file names it (read when a request comes)."""
    monkeypatch.setenv("AIQLEADS_WEB_FORM_KEY", FORM_KEY)


async def counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.transaction(write=False) as session:
        current = await session.scalar(
            sa.select(sa.func.count())
            .select_from(SourceRecord)
            .where(SourceRecord.current.is_(True))
        )
        leads = await session.scalar(sa.select(sa.func.count()).select_from(Lead))
    return int(current or 0), int(leads or 0)


async def test_one_submission_twice_at_once_is_stored_once(api: Api, runtime: Runtime) -> None:
    body = intake_body()
    answers = await asyncio.gather(
        *(api.client.post(URL, json=body, headers={"X-API-Key": FORM_KEY}) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert sorted(a.json()["outcome"] for a in answers) == ["accepted", "unchanged"]
    assert await counts(runtime) == (1, 1)


async def test_two_versions_of_one_submission_at_once_make_one_lead(
    api: Api, runtime: Runtime
) -> None:
    bodies = [intake_body(), intake_body(phone="(702) 555-0199")]
    answers = await asyncio.gather(
        *(api.client.post(URL, json=b, headers={"X-API-Key": FORM_KEY}) for b in bodies)
    )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert await counts(runtime) == (1, 1)
