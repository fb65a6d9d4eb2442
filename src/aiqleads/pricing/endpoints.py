"""A lead's explained price for agents; pricing configuration and simulation for operators."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from aiqleads.accounts.deps import AdminUser, LeadReader
from aiqleads.kit.db import defer_job
from aiqleads.kit.deps import RuntimeDep, SessionDep
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
async def recompute_now(operator: AdminUser, session: SessionDep) -> dict[str, str]:
    """Measure demand and supply again and reprice every lead on sale (in the background)."""
    defer_job(session, RECOMPUTE_JOB, {})
    return {"status": "accepted"}


@admin.get("/{market}", response_model=PricingConfigOut)
async def get_pricing(
    market: str, operator: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> PricingConfigOut:
    """The configuration in force (version 0: the built-in defaults)."""
    return await PricingService(session, runtime).config(market)


@admin.put("/{market}", response_model=PricingConfigOut)
async def put_pricing(
    market: str,
    body: PricingConfig,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
) -> PricingConfigOut:
    """Save a new version of a market's pricing; prices follow at the next recompute."""
    return await PricingService(session, runtime).save_config(market, body, operator)
