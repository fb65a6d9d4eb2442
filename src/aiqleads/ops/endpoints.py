"""Liveness, readiness and metrics for operators and orchestrators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiqleads.kit.deps import RuntimeDep
from aiqleads.kit.errors import problem_response

router = APIRouter(tags=["ops"])
CHECK_TIMEOUT = 2.0


# HEAD too (RFC 9110 9.1), as load balancers and uptime checkers probe with it; out of the
# schema so that GET keeps its operation id alone.
@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
@router.head("/readyz", response_model=None, include_in_schema=False)
async def readyz(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Ready to serve: the database answers, Redis too if configured, jobs are running."""
    checks: dict[str, str] = {}

    async def check(name: str, probe: Awaitable[object]) -> None:
        try:
            await asyncio.wait_for(probe, CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failing: {type(exc).__name__}"

    await check("database", runtime.db.ping())
    if runtime.redis is not None:
        await check("redis", runtime.redis.ping())
    scheduler = getattr(request.app.state, "scheduler_task", None)
    if runtime.jobs.in_process:
        alive = scheduler is not None and not scheduler.done()
        checks["jobs"] = "ok" if alive else "failing: in-process scheduler is not running"
    else:
        checks["jobs"] = checks.get("redis", "failing")
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    failing = ", ".join(k for k, v in checks.items() if v != "ok")
    return problem_response(
        request, 503, "not_ready", f"Not ready: {failing}", extra={"checks": checks}
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
