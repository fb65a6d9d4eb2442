"""Test fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

AIQLEADS_TEST_DATABASE_URL  a PostgreSQL+PostGIS database the suite may wipe
AIQLEADS_TEST_REDIS_URL     a Redis the suite may use for the job-queue tests
AIQLEADS_TEST_REQUIRE_ALL=1 fail the run if either leg above did not run (CI sets it)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from aiqleads.accounts.service import AccountService
from aiqleads.app import create_app
from aiqleads.kit.clock import FrozenClock
from aiqleads.kit.db import Base, create_engine
from aiqleads.kit.migrate import upgrade
from aiqleads.mail.models import OutboundEmail
from aiqleads.models import import_all_models
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings

PG_URL = os.environ.get("AIQLEADS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("AIQLEADS_TEST_REDIS_URL")
DIALECTS = ["sqlite"] + (["postgresql"] if PG_URL else [])
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery staple"

import_all_models()


# Passed tests per optional leg, so CI can prove the PostgreSQL and Redis legs ran.
LEGS = {"postgresql": 0, "redis": 0}


def pytest_configure(config: pytest.Config) -> None:
    if PG_URL and not PG_URL.startswith("postgresql"):
        raise pytest.UsageError("AIQLEADS_TEST_DATABASE_URL must be a postgresql+asyncpg:// URL")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `redis` need a Redis; without one (a laptop) they are skipped. CI sets
    AIQLEADS_TEST_REDIS_URL and AIQLEADS_TEST_REQUIRE_ALL=1, so there they always run and a
    run in which they did not is a failure (see `_legs_missing`)."""
    if REDIS_URL:
        return
    skip = pytest.mark.skip(reason="AIQLEADS_TEST_REDIS_URL not set")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        if re.search(r"[\[-]postgresql[\]-]", report.nodeid):
            LEGS["postgresql"] += 1
        if "redis" in report.keywords:
            LEGS["redis"] += 1


def _leg(name: str, configured: bool) -> str:
    return f"{name} ran {LEGS[name]} tests" if configured else f"{name} not configured"


def _legs_missing() -> bool:
    required = os.environ.get("AIQLEADS_TEST_REQUIRE_ALL") == "1"
    return required and not (PG_URL and LEGS["postgresql"] and REDIS_URL and LEGS["redis"])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.testscollected and _legs_missing():
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(
        f"database legs: sqlite always; {_leg('postgresql', bool(PG_URL))}; "
        f"{_leg('redis', bool(REDIS_URL))}"
    )
    if _legs_missing():
        terminalreporter.write_line(
            "FAIL: AIQLEADS_TEST_REQUIRE_ALL=1 but the PostgreSQL or Redis leg did not run",
            red=True,
        )


# databases


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        await conn.execute(sa.text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each dialect's database, migrated from blank to head once per run."""
    urls: dict[str, str] = {}
    template = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{template}")
    urls["sqlite"] = str(template)
    if PG_URL:
        asyncio.run(_reset_postgres(PG_URL))
        upgrade(PG_URL)
        urls["postgresql"] = PG_URL
    return urls


async def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        # Replica mode skips triggers: the ledger's tables refuse TRUNCATE otherwise.
        await conn.execute(sa.text("SET session_replication_role = replica"))
        await conn.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    await engine.dispose()


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, migrated: dict[str, str], tmp_path: Path) -> str:
    """A migrated, empty database of each configured dialect."""
    if request.param == "sqlite":
        path = tmp_path / "aiqleads.db"
        shutil.copy(migrated["sqlite"], path)
        return f"sqlite+aiosqlite:///{path}"
    asyncio.run(_truncate_postgres(migrated["postgresql"]))
    return migrated["postgresql"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 15, 0, 7, tzinfo=UTC))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        redis_url=None,
        smtp_url=None,
        log_level="WARNING",
    )


@pytest.fixture
async def app(
    settings: Settings, clock: FrozenClock, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    # Tests marked `no_scheduler` run every periodic job themselves, so none runs between
    # their steps (a moved FrozenClock would make them due).
    scheduler = request.node.get_closest_marker("no_scheduler") is None
    app = create_app(settings, clock, run_scheduler=scheduler)
    # Shutdown lets running jobs finish for up to 10 s (kit.jobs.JobRunner.shutdown): the
    # harness waits longer than that, not asgi-lifespan's default of 5 s, which once failed
    # a test's teardown while a job was still finishing on a busy machine.
    async with LifespanManager(app, shutdown_timeout=30):
        yield app


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# people


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.access_token)


class Api:
    """Drives the service the way a user does, over HTTP; reads mail from the outbox."""

    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    async def emails_to(self, address: str, kind: str | None = None) -> list[OutboundEmail]:
        async with self.runtime.transaction(write=False) as session:
            query = sa.select(OutboundEmail).where(OutboundEmail.to_address == address)
            if kind:
                query = query.where(OutboundEmail.kind == kind)
            return list(await session.scalars(query.order_by(OutboundEmail.created_at)))

    async def token_from_mail(self, address: str, kind: str) -> str:
        mails = await self.emails_to(address, kind)
        assert mails, f"no {kind} e-mail to {address}"
        match = re.search(r"token=([A-Za-z0-9_-]+)", mails[-1].body_text)
        assert match
        return match.group(1)

    async def register(
        self, email: str, password: str = PASSWORD, name: str = "Pat Agent"
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
        )

    async def login(self, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password, **extra}
        )

    async def signup(self, email: str, password: str = PASSWORD) -> Account:
        """Register, verify by the e-mailed link, sign in."""
        assert (await self.register(email, password)).status_code == 202
        token = await self.token_from_mail(email, "verify_email")
        assert (
            await self.client.post(
                "/api/v1/auth/verify-email", json={"token": token, "password": password}
            )
        ).status_code == 200
        response = await self.login(email, password)
        assert response.status_code == 200, response.text
        body = response.json()
        return Account(email, password, body["access_token"], body["refresh_token"])

    async def admin(self, email: str = "ops@aiqleads.example.com") -> Account:
        async with self.runtime.transaction() as session:
            await AccountService(session, self.runtime).create_admin(email, PASSWORD, "Ops")
        body = (await self.login(email)).json()
        return Account(email, PASSWORD, body["access_token"], body["refresh_token"])


@pytest.fixture
def api(client: httpx.AsyncClient, runtime: Runtime) -> Api:
    return Api(client, runtime)


# a real SMTP server on loopback


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    content: bytes


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[SmtpSink, int]]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()
