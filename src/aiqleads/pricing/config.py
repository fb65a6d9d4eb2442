"""What operators tune per market: base prices, factor weights, bounds and plan discounts.

Every field is required: a saved version is a whole configuration, so a body that leaves a
field out is refused rather than completed with the built-in values (which would silently
undo an earlier version's setting). The built-in values are DEFAULT_CONFIG, version 0."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aiqleads.leads.models import LEAD_KINDS


class Weights(BaseModel):
    """How far each factor may move the price (0.3: up to 30 % either way)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    quality: float = Field(ge=0, le=1)
    fraud: float = Field(ge=0, le=1)
    demand: float = Field(ge=0, le=1)
    supply: float = Field(ge=0, le=1)


class TierDiscounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    basic: float = Field(ge=0, le=0.9)
    pro: float = Field(ge=0, le=0.9)
    enterprise: float = Field(ge=0, le=0.9)


class PricingConfig(BaseModel):
    """One market's pricing. Every price is base x factors, discounted by plan, then held
    between the floor and the ceiling."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    base_cents: dict[str, int] = Field(description="Base price of a lead of each kind, in cents")
    weights: Weights
    demand_reference: float = Field(
        gt=0,
        le=10_000,
        description="Weighted demand events per available similar lead per week that count as "
        "normal (views 1, cart adds 3, purchases 5)",
    )
    supply_reference: int = Field(
        gt=0,
        le=10_000_000,
        description="Available similar leads (same market and kind) that count as normal",
    )
    freshness_half_life_days: float = Field(gt=0, le=3650)
    freshness_min: float = Field(ge=0.05, le=1, description="An old lead keeps at least this share")
    exclusive_premium: float = Field(ge=0, le=5)
    shared_sale_discount: float = Field(
        ge=0, lt=1, description="Each sale of a shared lead takes this share off"
    )
    floor_cents: int = Field(ge=1, le=10_000_000)
    ceiling_cents: int = Field(ge=1, le=10_000_000)
    tier_discounts: TierDiscounts

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.floor_cents > self.ceiling_cents:
            raise ValueError("floor_cents is above ceiling_cents")
        missing = sorted(set(LEAD_KINDS) - set(self.base_cents))
        if missing:
            raise ValueError(f"base_cents has no price for {', '.join(missing)}")
        unknown = sorted(set(self.base_cents) - set(LEAD_KINDS))
        if unknown:
            raise ValueError(f"base_cents names unknown kinds: {', '.join(unknown)}")
        for kind, cents in self.base_cents.items():
            if not 1 <= cents <= 10_000_000:
                raise ValueError(f"base_cents[{kind!r}] must be between 1 and 10,000,000")
        return self


# Version 0 of every market: in force until an operator saves one.
DEFAULT_CONFIG = PricingConfig(
    base_cents={
        "seller": 12_500,
        "buyer": 7_500,
        "fsbo": 10_000,
        "expired_listing": 9_000,
        "solar_homeowner": 6_000,
    },
    weights=Weights(quality=0.30, fraud=0.50, demand=0.25, supply=0.15),
    demand_reference=2.0,
    supply_reference=500,
    freshness_half_life_days=30,
    freshness_min=0.5,
    exclusive_premium=0.5,
    shared_sale_discount=0.15,
    floor_cents=2_500,
    ceiling_cents=50_000,
    tier_discounts=TierDiscounts(basic=0.0, pro=0.10, enterprise=0.20),
)
