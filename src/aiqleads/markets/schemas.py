from __future__ import annotations

from pydantic import BaseModel

from aiqleads.markets.catalog import Market


class MarketList(BaseModel):
    items: list[Market]
