"""The pricing engine: pure functions from a lead's facts and its segment's demand and supply
to a price in cents and the contribution of every factor.

The price is a waterfall. It starts at the market's base price for the lead's kind; each
factor multiplies the running price and its contribution is the change it made, in whole
cents (rounded half up at each step); the buyer's plan discount comes next; the floor or
ceiling last, so the bounds always hold. The contributions therefore add up exactly to the
final price, and the same inputs always give the same price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from aiqleads.leads.models import Exclusivity
from aiqleads.pricing.config import PricingConfig

TIERS = ("basic", "pro", "enterprise")
# Weighted demand: a cart add says more than a view, a purchase more than both.
DEMAND_WEIGHTS = {"view": 1, "cart_add": 3, "purchase": 5}


@dataclass(frozen=True, slots=True)
class LeadFacts:
    kind: str
    quality_score: int
    fraud_score: float
    created_at: datetime
    exclusivity: Exclusivity
    sales_count: int


@dataclass(frozen=True, slots=True)
class Segment:
    """Similar leads: the same market and kind."""

    demand: float  # weighted demand events over the last 7 days
    available: int  # leads on sale now
    # Weighted demand events of the whole market: none at all means no signal yet (a new
    # market), which must not read as "nobody wants these leads".
    market_demand: float


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    multiplier: float | None
    contribution_cents: int
    price_after_cents: int
    detail: str


@dataclass(frozen=True, slots=True)
class Price:
    base_cents: int
    steps: tuple[Step, ...]
    final_cents: int


FACTORS = ("quality", "fraud", "demand", "supply", "freshness", "exclusivity")


def _clamp(value: float, low: float = -1.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def _cents(value: float) -> int:
    return math.floor(value + 0.5)  # half up; prices are never negative


def _age_days(created_at: datetime, as_of: datetime) -> int:
    # Whole days: a price steps down once a day instead of drifting by a cent at every
    # recompute, which would rewrite every stored price and its history each time.
    return max((as_of - created_at).days, 0)


def _segment_factors(segment: Segment, config: PricingConfig) -> tuple[float, float]:
    """The demand and supply multipliers, the same for every lead of a segment."""
    w = config.weights
    interest = segment.demand / max(segment.available, 1)
    demand = _clamp(interest / config.demand_reference - 1) if segment.market_demand else 0.0
    return (
        1 + w.demand * demand,
        1 + w.supply * _clamp(1 - segment.available / config.supply_reference),
    )


def _quality_factor(config: PricingConfig, quality_score: int) -> float:
    return 1 + config.weights.quality * _clamp((quality_score - 50) / 50)


def _fraud_factor(config: PricingConfig, fraud_score: float) -> float:
    return 1 - config.weights.fraud * _clamp(fraud_score, 0, 1)


def _freshness_factor(config: PricingConfig, age_days: int) -> float:
    decay: float = 0.5 ** (age_days / config.freshness_half_life_days)
    return max(config.freshness_min, decay)


def _exclusivity_factor(config: PricingConfig, exclusivity: Exclusivity, sales_count: int) -> float:
    if exclusivity is Exclusivity.EXCLUSIVE:
        return 1 + config.exclusive_premium
    return (1 - config.shared_sale_discount) ** sales_count


def _factors(
    config: PricingConfig,
    segment_factors: tuple[float, float],
    quality_score: int,
    fraud_score: float,
    freshness: float,
    exclusivity: Exclusivity,
    sales_count: int,
) -> tuple[float, ...]:
    """The six multipliers in FACTORS order, from the segment's two and the lead's facts."""
    return (
        _quality_factor(config, quality_score),
        _fraud_factor(config, fraud_score),
        *segment_factors,
        freshness,
        _exclusivity_factor(config, exclusivity, sales_count),
    )


def multipliers(
    facts: LeadFacts, segment: Segment, config: PricingConfig, as_of: datetime
) -> tuple[float, ...]:
    """Each factor's multiplier (in FACTORS order) for this lead as of `as_of`."""
    return _factors(
        config,
        _segment_factors(segment, config),
        facts.quality_score,
        facts.fraud_score,
        _freshness_factor(config, _age_days(facts.created_at, as_of)),
        facts.exclusivity,
        facts.sales_count,
    )


def _plural(n: float, word: str) -> str:
    return f"{n:.0f} {word}{'' if round(n) == 1 else 's'}"


def describe(
    facts: LeadFacts, segment: Segment, config: PricingConfig, as_of: datetime
) -> tuple[str, ...]:
    """Why each factor is what it is, in words (FACTORS order)."""
    interest = segment.demand / max(segment.available, 1)
    exclusivity = (
        "exclusive: sold to one buyer only"
        if facts.exclusivity is Exclusivity.EXCLUSIVE
        else f"shared: sold {_plural(facts.sales_count, 'time')} so far"
    )
    demand = (
        f"{interest:.2f} weighted views, cart adds and purchases per similar lead in the last "
        f"7 days (normal: {config.demand_reference:g})"
        if segment.market_demand
        else "no demand recorded in this market in the last 7 days yet: neutral"
    )
    return (
        f"quality score {facts.quality_score}/100 (50 is neutral)",
        f"fraud score {facts.fraud_score:.2f}",
        demand,
        f"{_plural(segment.available, 'similar lead')} on sale in this market "
        f"(normal: {config.supply_reference})",
        f"on sale for {_plural(_age_days(facts.created_at, as_of), 'day')} "
        f"(price halves every {config.freshness_half_life_days:g} days, to at most "
        f"{1 - config.freshness_min:.0%} off)",
        exclusivity,
    )


def plan_discount(config: PricingConfig, tier: str) -> float:
    """The plan's discount; a plan the configuration does not name gets none."""
    discount: float = getattr(config.tier_discounts, tier, 0.0)
    return discount


def _waterfall(base_cents: int, factors: tuple[float, ...], discount: float) -> list[int]:
    """The running price after each factor and, last, after the plan discount."""
    running, out = base_cents, []
    for multiplier in (*factors, 1 - discount):
        running = _cents(running * multiplier)
        out.append(running)
    return out


class SegmentPricer:
    """The final price of many leads of one segment for one plan, without the explanation
    (the recompute prices a million, a search page fifty): the segment's factors are worked
    out once, and the freshness factor (a power) once per age in days. The multipliers are
    the ones `multipliers` gives, through the same waterfall as `price`, so the price is the
    same to the cent."""

    def __init__(
        self,
        base_cents: int,
        segment: Segment,
        config: PricingConfig,
        as_of: datetime,
        tier: str = "basic",
    ) -> None:
        self._base = base_cents
        self._config = config
        self._as_of = as_of
        self._segment_factors = _segment_factors(segment, config)
        self._discount = plan_discount(config, tier)
        self._freshness: dict[int, float] = {}

    def __call__(
        self,
        quality_score: int,
        fraud_score: float,
        created_at: datetime,
        exclusivity: Exclusivity,
        sales_count: int,
    ) -> int:
        config = self._config
        days = _age_days(created_at, self._as_of)
        freshness = self._freshness.get(days)
        if freshness is None:
            freshness = self._freshness[days] = _freshness_factor(config, days)
        factors = _factors(
            config,
            self._segment_factors,
            quality_score,
            fraud_score,
            freshness,
            exclusivity,
            sales_count,
        )
        running = _waterfall(self._base, factors, self._discount)[-1]
        return min(max(running, config.floor_cents), config.ceiling_cents)


def price(
    facts: LeadFacts,
    segment: Segment,
    config: PricingConfig,
    as_of: datetime,
    tier: str = "basic",
) -> Price:
    """A lead's price for a buyer on `tier`, with every step of the waterfall explained."""
    # Every kind has a base price (PricingConfig refuses a config without one).
    base = config.base_cents[facts.kind]
    factors = multipliers(facts, segment, config, as_of)
    details = describe(facts, segment, config, as_of)
    discount = plan_discount(config, tier)
    running = _waterfall(base, factors, discount)
    steps: list[Step] = []
    before = base
    for name, multiplier, detail, after in zip(FACTORS, factors, details, running, strict=False):
        steps.append(Step(name, multiplier, after - before, after, detail))
        before = after
    if discount:
        after = running[-1]
        detail = f"{tier} plan: {discount:.0%} off"
        steps.append(Step("plan", 1 - discount, after - before, after, detail))
        before = after
    bounded = min(max(before, config.floor_cents), config.ceiling_cents)
    if bounded != before:
        name, detail = (
            ("floor", f"market floor ${config.floor_cents / 100:,.2f}")
            if bounded > before
            else ("ceiling", f"market ceiling ${config.ceiling_cents / 100:,.2f}")
        )
        steps.append(Step(name, None, bounded - before, bounded, detail))
    return Price(base, tuple(steps), bounded)
