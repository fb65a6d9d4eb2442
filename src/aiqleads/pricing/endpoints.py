"""A lead's explained price for agents; pricing configuration and simulation for operators."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from aiqleads.accounts.deps import AdminUser, LeadReader
from aiqleads.kit.db import defer_job
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.errors import AppError
from aiqleads.pricing.config import PricingConfig
from aiqleads.pricing.schemas import PriceOut, PricingConfigOut, SimulateIn, SimulationOut
from aiqleads.pricing.service import PricingService
from aiqleads.pricing.tasks import RECOMPUTE_JOB

router = APIRouter(tags=["pricing"])
admin = APIRouter(prefix="/admin/pricing", tags=["admin: pricing"])


@router.get("/leads/{lead_id}/price", response_model=PriceOut)
async def lead_price(
    lead_id: uuid.UUID, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> PriceOut:
    """What this lead costs you (your plan's discount included) and every factor's part."""
    return await PricingService(session, runtime).explain(lead_id, viewer)


@admin.post("/simulate", response_model=SimulationOut)
async def simulate(
    body: SimulateIn, operator: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> SimulationOut:
    """What prices in a market would become under a configuration, before saving it."""
    return await PricingService(session, runtime).simulate(body.market, body.config, body.sample)


@admin.post("/recompute", status_code=status.HTTP_202_ACCEPTED)
async def recompute_now(
    operator: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> dict[str, str]:
    """Measure demand and supply again and reprice every lead on sale (in the background);
    audited, as it is what puts a saved configuration in force."""
    PricingService(session, runtime).recompute_requested(operator)
    defer_job(session, RECOMPUTE_JOB, {})
    return {"status": "accepted"}


def _etag(version: int) -> str:
    return f'"{version}"'


_VERSION_TAG = re.compile(r'"([0-9]{1,9})"')


def _edited_version(if_match: str | None) -> int:
    """The version a PUT edits, from `If-Match: "<version>"` (the ETag its GET answered)."""
    found = _VERSION_TAG.fullmatch(if_match.strip()) if if_match is not None else None
    if found is None:
        raise AppError(
            'Send If-Match with the ETag of the version you edited (GET answers it, e.g. "3")',
            code="precondition_required",
            status=428,
        )
    return int(found.group(1))


@admin.get("/{market}", response_model=PricingConfigOut)
async def get_pricing(
    market: str, operator: AdminUser, session: SessionDep, runtime: RuntimeDep, response: Response
) -> PricingConfigOut:
    """The configuration in force (version 0: the built-in defaults); its version is also the
    ETag, which a PUT of an edit of it sends back as If-Match."""
    out = await PricingService(session, runtime).config(market)
    response.headers["ETag"] = _etag(out.version)
    return out


@admin.put("/{market}", response_model=PricingConfigOut)
async def put_pricing(
    market: str,
    body: PricingConfig,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> PricingConfigOut:
    """Save a whole configuration, an edit of the version named by If-Match, as the next
    version; prices follow at the next recompute. 409 if another version was saved since."""
    edited = _edited_version(if_match)
    out = await PricingService(session, runtime).save_config(market, body, operator, edited)
    response.headers["ETag"] = _etag(out.version)
    return out
