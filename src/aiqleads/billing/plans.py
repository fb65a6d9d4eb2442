"""Plans and credit packs are data (`data/plans.json`, or `AIQLEADS_PLANS_FILE`).

One credit buys one cent of a lead's price, so a lead quoted at $125.00 costs 12,500 credits
and nothing is ever rounded between prices and credits (ADR 0007).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Slug = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=40)
HoldExtension = Literal["24h", "3d", "7d"]
FREE_PLAN = "basic"


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Slug
    name: str = Field(min_length=1, max_length=60)
    monthly_price_cents: int = Field(ge=0, le=100_000_000)
    monthly_credits: int = Field(ge=0, le=100_000_000)
    hold_extensions: tuple[HoldExtension, ...] = ()
    rate_limit_per_minute: int = Field(gt=0, le=1_000_000)
    # Enterprise: an operator sets each account's limit; the plan's is the default.
    custom_rate_limit: bool = False
    description: str = Field(default="", max_length=300)

    @property
    def free(self) -> bool:
        return self.monthly_price_cents == 0


class CreditPack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Slug
    name: str = Field(min_length=1, max_length=60)
    price_cents: int = Field(gt=0, le=100_000_000)
    credits: int = Field(gt=0, le=100_000_000)


class PlanFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plans: list[Plan] = Field(min_length=1)
    credit_packs: list[CreditPack] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, ids in (
            ("plan", [p.id for p in self.plans]),
            ("credit pack", [c.id for c in self.credit_packs]),
        ):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{kind} ids must be unique")
        free = [p for p in self.plans if p.free]
        if [p.id for p in free] != [FREE_PLAN]:
            raise ValueError(f"exactly one plan is free, and it is {FREE_PLAN!r}")
        return self


class PlanCatalog:
    def __init__(self, data: PlanFile) -> None:
        self._plans = {p.id: p for p in data.plans}
        self._packs = {c.id: c for c in data.credit_packs}

    def plans(self) -> list[Plan]:
        return list(self._plans.values())

    def plan(self, plan_id: str) -> Plan | None:
        return self._plans.get(plan_id)

    def of(self, plan_id: str) -> Plan:
        """The plan a user is on; an unknown one (a plan since removed) counts as the free
        plan."""
        return self._plans.get(plan_id) or self._plans[FREE_PLAN]

    def packs(self) -> list[CreditPack]:
        return list(self._packs.values())

    def pack(self, pack_id: str) -> CreditPack | None:
        return self._packs.get(pack_id)


def load_plans(path: Path | None = None) -> PlanCatalog:
    if path is None:
        text = resources.files("aiqleads.billing").joinpath("data/plans.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return PlanCatalog(PlanFile.model_validate(json.loads(text)))
