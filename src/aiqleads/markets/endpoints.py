from __future__ import annotations

from fastapi import APIRouter

from aiqleads.kit.deps import RuntimeDep
from aiqleads.markets.schemas import MarketList

router = APIRouter(prefix="/markets", tags=["markets"])


@router.get("", response_model=MarketList)
async def list_markets(runtime: RuntimeDep) -> MarketList:
    """The markets AIQLeads operates in, with their centre, bounds and time zone."""
    return MarketList(items=runtime.markets.all())
