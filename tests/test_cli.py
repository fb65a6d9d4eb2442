"""The `aiqleads` command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from aiqleads.cli import app
from aiqleads.ingest.models import IngestionRun, SourceRecord
from aiqleads.ingest.service import run_source
from aiqleads.ingest.sources import SourceConfig
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead
from aiqleads.quality.models import LeadReview, ModelVersion
from aiqleads.runtime import Runtime
from tests.conftest import PASSWORD, TEST_SECRET, Api
from tests.ingest.factories import fake_lead

runner = CliRunner()


async def invoke(args: list[str]) -> Result:
    """The CLI runs its own event loop, so async tests call it from a thread."""
    return await asyncio.to_thread(runner.invoke, app, args)


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIQLEADS_DATABASE_URL", database_url)
    monkeypatch.setenv("AIQLEADS_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("AIQLEADS_LOG_LEVEL", "WARNING")


async def test_create_admin_makes_a_verified_admin_who_can_sign_in(env: None, api: Api) -> None:
    result = await invoke(
        ["users", "create-admin", "--email", "Boss@Ops.example.com", "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output
    response = await api.login("boss@ops.example.com")
    assert response.status_code == 200
    me = await api.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.json()["role"] == "admin"
    assert me.json()["email_verified"] is True


def test_create_admin_refuses_a_common_password(env: None) -> None:
    result = runner.invoke(
        app, ["users", "create-admin", "--email", "b@ops.example.com", "--password", "iloveyou123"]
    )
    assert result.exit_code == 1
    assert "commonly used" in result.output


def test_markets_list_prints_the_markets(env: None) -> None:
    result = runner.invoke(app, ["markets", "list"])
    assert result.exit_code == 0
    for name in ("las-vegas", "dallas-fort-worth", "austin", "phoenix", "America/Phoenix"):
        assert name in result.output


async def test_demo_load_only_fills_an_empty_database(
    env: None, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await invoke(["demo", "load", "--if-empty", "--count", "300"])
    assert first.exit_code == 0, first.output
    assert "agent@demo.aiqleads.example.com" in first.output
    async with runtime.transaction(write=False) as session:
        statuses = dict(
            (
                await session.execute(sa.select(Lead.status, sa.func.count()).group_by(Lead.status))
            ).all()
        )
        merged = await session.scalar(sa.select(sa.func.count()).where(Lead.source_count > 1))
        markets = set(await session.scalars(sa.select(Lead.market).distinct()))
    # Generated duplicates were merged, some fraud waits in review, all four markets have leads.
    assert statuses[LeadStatus.AVAILABLE] > 150
    assert statuses.get(LeadStatus.QUARANTINED, 0) >= 1
    assert merged
    assert merged > 10
    assert markets == {"las-vegas", "dallas-fort-worth", "austin", "phoenix"}
    second = await invoke(["demo", "load", "--if-empty"])
    assert "nothing loaded" in second.output
    # Loading again (accounts reset, records unchanged) does not grant the demo credits twice.
    again = await invoke(["demo", "load", "--count", "300"])
    assert again.exit_code == 0, again.output
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "agent@demo.aiqleads.example.com", "password": "demo-agent-passphrase"},
    )
    assert login.status_code == 200
    token = login.json()["access_token"]
    credits = await client.get("/api/v1/credits", headers={"Authorization": f"Bearer {token}"})
    assert credits.json()["balance"] == 100_000


def test_production_refuses_to_start_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIQLEADS_ENV", "production")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "refusing to start in production" in result.output


def test_worker_needs_redis(env: None) -> None:
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "AIQLEADS_REDIS_URL" in result.output


def test_demo_data_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIQLEADS_ENV", "production")
    monkeypatch.setenv("AIQLEADS_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("AIQLEADS_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("AIQLEADS_PUBLIC_URL", "https://app.aiqleads.example.com")
    result = runner.invoke(app, ["demo", "load"])
    assert result.exit_code == 2
    assert "never loaded in production" in result.output


MAPPING = {
    "key_column": "MLS #",
    "columns": {
        "full_name": "Owner",
        "phone": "Phone",
        "street": "Address",
        "city": "City",
        "state": "ST",
        "postal_code": "Zip",
        "list_price": "Price",
        "beds": "Beds",
    },
}
CSV = """MLS #,Owner,Phone,Address,City,ST,Zip,Price,Beds
LV-1,"Johnson, Robert",(702) 555-0143,4500 W Sahara Ave Apt 210,Las Vegas,NV,89102,$425K,3
LV-2,Ana Lopez,702-555-0188,12 Oak St,Las Vegas,NV,89102,"410,000",2
LV-3,No Contact,,,Las Vegas,NV,89102,,
LV-4,Broken,row
"""


async def test_ingest_a_csv_export_with_a_mapping_file(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    sources = {
        "sources": [
            {
                "slug": "lv-csv",
                "name": "LV CSV",
                "type": "csv",
                "trust": 0.8,
                "options": {"mapping_file": str(mapping)},
            }
        ]
    }
    sources_file = tmp_path / "sources.json"
    sources_file.write_text(json.dumps(sources))
    monkeypatch.setenv("AIQLEADS_SOURCES_FILE", str(sources_file))
    export = tmp_path / "export.csv"
    export.write_text(CSV)

    result = await invoke(["ingest", "lv-csv", "--file", str(export)])
    assert result.exit_code == 0, result.output
    assert "lv-csv" in result.output
    assert "succeeded" in result.output
    async with runtime.transaction(write=False) as session:
        names = set(await session.scalars(sa.select(Lead.last_name)))
    assert names == {"Johnson", "Lopez"}

    again = await invoke(["ingest", "lv-csv", "--file", str(export)])
    assert again.exit_code == 0
    async with runtime.transaction(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 2
        # Nothing new stored either: the file's four rows once each, no second versions.
        stored = sa.select(sa.func.count()).select_from(SourceRecord)
        assert await session.scalar(stored) == 4

    unknown = await invoke(["ingest", "nope"])
    assert unknown.exit_code == 2
    assert "unknown source" in unknown.output


async def test_ingest_of_a_csv_source_without_file_is_refused_before_a_run(
    env: None, runtime: Runtime
) -> None:
    """README: "CSV sources take the file with --file". Without it: a usage error that says
    so, and no failed run recorded."""
    result = await invoke(["ingest", "mls-csv"])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "pass --file PATH" in said
    assert "push-only" not in said
    async with runtime.transaction(write=False) as session:
        runs = await session.scalar(sa.select(sa.func.count()).select_from(IngestionRun))
    assert runs == 0


async def test_fraud_train_stores_a_new_active_version(env: None, runtime: Runtime) -> None:
    result = await invoke(["fraud", "train", "--synthetic", "3000"])
    assert result.exit_code == 0, result.output
    async with runtime.transaction(write=False) as session:
        [model] = list(await session.scalars(sa.select(ModelVersion)))
    assert model.version == 1
    assert model.active
    assert model.metrics["roc_auc"] > 0.9
    assert model.features[0] == "phone_invalid"


@pytest.mark.parametrize("count", ["-3", "-1"])
def test_fraud_train_with_a_negative_count_is_a_usage_error(env: None, count: str) -> None:
    result = runner.invoke(app, ["fraud", "train", "--synthetic", count])
    assert result.exit_code == 2, (result.exit_code, repr(result.exception))
    assert "Traceback" not in result.output


@pytest.mark.parametrize("synthetic", ["0", "8"])
async def test_fraud_train_with_too_few_labels_is_refused_and_stores_nothing(
    env: None, runtime: Runtime, synthetic: str
) -> None:
    """No reviews yet and --synthetic 0 (operators' labels only), or a handful of rows."""
    result = await invoke(["fraud", "train", "--synthetic", synthetic])
    assert result.exit_code == 1, (result.output, repr(result.exception))
    assert isinstance(result.exception, SystemExit)
    said = " ".join(result.output.split())  # rich wraps at the terminal's width
    assert "no fraud model trained" in said
    assert "at least 20 fraudulent and 20 genuine examples" in said
    async with runtime.transaction(write=False) as session:
        assert list(await session.scalars(sa.select(ModelVersion))) == []


async def test_fraud_train_learns_from_operators_review_decisions(
    env: None, runtime: Runtime
) -> None:
    form = SourceConfig(
        slug="demo-webform", name="Form", type="demo", options={"consent_required": True}
    )
    await run_source(runtime, form, trigger="test", records=[fake_lead()])
    async with runtime.transaction() as session:
        lead = await session.scalar(sa.select(Lead))
        assert lead is not None
        session.add(
            LeadReview(
                id=uuid.uuid4(),
                lead_id=lead.id,
                decision="reject",
                reason="test entry",
                features=dict(lead.fraud_features),
                fraud_score=lead.fraud_score,
                created_at=runtime.clock.now(),
            )
        )
    result = await invoke(["fraud", "train", "--synthetic", "3000"])
    assert result.exit_code == 0, result.output
    async with runtime.transaction(write=False) as session:
        [model] = list(await session.scalars(sa.select(ModelVersion)))
    assert model.metrics["training_source"] == "1 reviewed + 3000 generated"
    assert model.training_rows == 3001


def test_an_invalid_setting_is_a_usage_error_that_does_not_print_its_value(
    tmp_path: Path,
) -> None:
    """A mistyped AIQLEADS_SMTP_URL once printed a traceback with the URL, password and all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQLEADS_")} | {
        "AIQLEADS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
        "AIQLEADS_SMTP_URL": "stmp://mailer:s3cr3t-pw@smtp.example.com:587",  # typo: stmp
        "COLUMNS": "200",
    }
    aiqleads = Path(sys.executable).parent / "aiqleads"
    done = subprocess.run(
        [str(aiqleads), "markets", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-1500:]
    assert "s3cr3t-pw" not in output
    assert "Traceback" not in output
    assert "AIQLEADS_SMTP_URL must look like smtp://" in output
