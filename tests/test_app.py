"""The app skeleton: problem+json errors, request ids in logs, metrics, health checks."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from aiqleads.app import create_app
from aiqleads.kit.clock import FrozenClock
from aiqleads.settings import Settings
from tests.conftest import REDIS_URL, TEST_SECRET, Api


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["instance"] == "/api/v1/no-such-thing"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/markets")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_validation_errors_are_problem_json_with_locations(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "a@b.example.com"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert ["body", "password"] in [e["loc"] for e in body["errors"]]
    malformed = await client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "validation_error"


async def test_request_id_is_echoed_and_in_every_log_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": "x@y.example.com", "password": "whatever123"},
            headers={"X-Request-ID": "trace-abc-123"},
        )
    assert response.headers["x-request-id"] == "trace-abc-123"
    assert response.json()["request_id"] == "trace-abc-123"
    # Lines of the request, not of periodic jobs that ran meanwhile (they carry job=...).
    lines = [
        r for r in caplog.records if r.name.startswith("aiqleads") and "'job':" not in str(r.msg)
    ]
    assert lines, "the request logged nothing"
    assert all("trace-abc-123" in str(r.msg) for r in lines)
    # An id that could forge log lines is replaced by a fresh one.
    evil = await client.get("/healthz", headers={"X-Request-ID": "a\tb c"})
    assert evil.headers["x-request-id"] != "a\tb c"
    assert len(evil.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/api/v1/markets")
    await client.get("/api/v1/markets")
    await client.get("/api/v1/api-keys/0b4e7a0e-0000-4000-8000-000000000000")  # 401, templated
    text = (await client.get("/metrics")).text
    assert (
        'aiqleads_http_requests_total{method="GET",route="/api/v1/markets",status="200"} 2.0'
        in text
    )
    assert 'route="/api/v1/api-keys/{key_id}"' in text
    assert "aiqleads_http_request_duration_seconds_bucket" in text


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "jobs": "ok"}


async def test_probes_answer_head(client: httpx.AsyncClient) -> None:
    """Load balancers and uptime checkers probe with HEAD (RFC 9110 9.1)."""
    for path in ("/healthz", "/readyz"):
        response = await client.head(path)
        assert response.status_code == 200, (path, response.status_code)
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]["/healthz"]) == {"get"}


async def test_a_request_body_over_1_mb_is_refused_with_413(client: httpx.AsyncClient) -> None:
    """Any endpoint, not only webhooks: refused as declared, or as the bytes arrive (chunked),
    before the body is read whole."""
    login = "/api/v1/auth/login"
    head, tail = b'{"email": "a@b.example.com", "password": "', b'"}'
    json_type = {"Content-Type": "application/json"}
    declared = await client.post(login, content=head + b"x" * 20_000_000 + tail, headers=json_type)

    chunks_sent = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield head
        for _ in range(200):  # 20 MB, never announced
            chunks_sent += 1
            yield b"x" * 100_000
        yield tail

    streamed = await client.post(login, content=chunked(), headers=json_type)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:200]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "payload_too_large"
        assert response.headers["x-request-id"]
    assert chunks_sent < 20  # refused after the first megabyte, not after reading 20

    under = await client.post(login, content=head + b"x" * 900_000 + tail, headers=json_type)
    assert under.status_code == 422  # read, and refused by the schema (a password that long)


async def test_readiness_fails_when_the_database_is_unreachable(
    tmp_path: object, clock: FrozenClock
) -> None:
    settings = Settings(
        env="test",
        secret_key=TEST_SECRET,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
    )
    app = create_app(settings, clock)
    async with LifespanManager(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            response = await client.get("/readyz")
            assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
    assert response.json()["checks"]["database"].startswith("failing")


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/markets",
        "/api/v1/admin/emails",
    ):
        assert path in spec["paths"]
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()  # works with no internet
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert (await client.get(asset)).status_code == 200, asset
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text


def test_production_refuses_default_secret_and_sqlite() -> None:
    from aiqleads.settings import SettingsError

    with pytest.raises(SettingsError, match="(?s)AIQLEADS_SECRET_KEY.*AIQLEADS_DATABASE_URL"):
        create_app(Settings(env="production"))
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app(
            Settings(
                env="production", secret_key="a" * 40, database_url="postgresql+asyncpg://h/db"
            )
        )
    loopback = Settings(
        env="production", secret_key=TEST_SECRET, database_url="postgresql+asyncpg://h/db"
    )
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        loopback.check_production()
    ready = loopback.model_copy(update={"public_url": "https://app.aiqleads.example.com"})
    ready.check_production()  # no error


async def test_production_logs_are_json(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    import structlog

    from aiqleads.kit.observability import configure_logging

    configure_logging("INFO", json_logs=True)
    with structlog.contextvars.bound_contextvars(request_id="rid-1"):
        structlog.get_logger("aiqleads.test").info("hello", answer=42)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "hello"
    assert record["request_id"] == "rid-1"
    assert record["answer"] == 42
    configure_logging("WARNING", json_logs=False)


async def test_logs_at_info_do_not_carry_credentials_from_urls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Graph API takes its access token in the query string; httpx logs each request's
    URL at INFO, which production logs keep."""
    import httpx

    from aiqleads.kit.observability import configure_logging

    configure_logging("INFO", json_logs=True)
    try:
        transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"id": "1"}))
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(
                "https://graph.example/v21.0/1", params={"access_token": "EAAB-SECRET"}
            )
        logged = capsys.readouterr().err
    finally:
        configure_logging("WARNING", json_logs=False)
    assert "EAAB-SECRET" not in logged


async def test_internal_errors_are_problem_json_without_details(app: object, api: Api) -> None:
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/database-boom")
    async def database_boom() -> None:  # a database error other than refused text
        raise sa.exc.OperationalError("SELECT secret", None, Exception("connection reset"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/boom", "/database-boom"):
            response = await client.get(path)
            assert response.status_code == 500
            assert response.json()["code"] == "internal_error"
            assert "secret" not in response.text
            assert response.headers.get_list("x-request-id") == [response.json()["request_id"]]


@pytest.mark.redis
async def test_readiness_checks_redis_when_configured(
    database_url: str, clock: FrozenClock
) -> None:
    settings = Settings(
        env="test", secret_key=TEST_SECRET, database_url=database_url, redis_url=REDIS_URL
    )
    app = create_app(settings, clock)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (await client.get("/readyz")).json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "jobs": "ok"}
