"""The `aiqleads` command line."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from aiqleads.cli import app
from tests.conftest import PASSWORD, TEST_SECRET, Api

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


async def test_demo_load_only_fills_an_empty_database(env: None, client: httpx.AsyncClient) -> None:
    first = await invoke(["demo", "load", "--if-empty"])
    assert "agent@demo.aiqleads.example.com" in first.output
    second = await invoke(["demo", "load", "--if-empty"])
    assert "nothing loaded" in second.output
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "agent@demo.aiqleads.example.com", "password": "demo-agent-passphrase"},
    )
    assert login.status_code == 200


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
