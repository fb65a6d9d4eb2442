"""Request and response bodies of pricing."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from aiqleads.pricing.config import PricingConfig


class PriceStepOut(BaseModel):
    factor: str
    multiplier: float | None = Field(description="None for the floor and ceiling")
    contribution_cents: int = Field(description="What this step added (negative: took off)")
    price_after_cents: int
    detail: str


class PriceOut(BaseModel):
    """A lead's price for you and how it came about: base, then each step; the
    contributions add up to the price."""

    lead_id: uuid.UUID
    market: str
    plan: str
    currency: str = "USD"
    base_cents: int
    price_cents: int
    steps: list[PriceStepOut]
    floor_cents: int
    ceiling_cents: int
    config_version: int
    as_of: datetime = Field(description="When demand and supply were last measured")


class PriceHistoryItem(BaseModel):
    price_cents: int
    config_version: int
    computed_at: datetime


class PricingConfigOut(BaseModel):
    market: str
    version: int = Field(description="0: the built-in defaults, never saved")
    config: PricingConfig
    created_at: datetime | None
    created_by: uuid.UUID | None


class SimulateIn(BaseModel):
    market: str = Field(max_length=64)
    config: PricingConfig
    sample: int = Field(default=1_000, ge=1, le=10_000, description="Leads to price")


class SimulatedPrice(BaseModel):
    current_cents: int
    proposed_cents: int


class SimulatedLead(BaseModel):
    lead_id: uuid.UUID
    kind: str
    current_cents: int = Field(description="The Basic plan's price now")
    proposed_cents: int = Field(description="The Basic plan's price under the configuration")
    plans: dict[str, SimulatedPrice] = Field(description="Each plan's price, now and proposed")


class PriceStats(BaseModel):
    mean_cents: int
    median_cents: int
    min_cents: int
    max_cents: int


class PlanSimulation(BaseModel):
    changed: int = Field(description="Leads whose price for this plan would change")
    current: PriceStats | None
    proposed: PriceStats | None


class SimulationOut(BaseModel):
    market: str
    leads: int
    changed: int = Field(description="Leads whose price would change for any plan")
    current: PriceStats | None = Field(description="The Basic plan's prices now")
    proposed: PriceStats | None = Field(description="The Basic plan's prices under the config")
    plans: dict[str, PlanSimulation] = Field(description="The same figures for each plan")
    examples: list[SimulatedLead]
