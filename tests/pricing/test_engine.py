"""The pricing engine alone: each factor moves the price the right way, the bounds hold, the
explanation adds up, the same inputs give the same price."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiqleads.leads.models import Exclusivity
from aiqleads.pricing.config import DEFAULT_CONFIG
from aiqleads.pricing.engine import (
    LeadFacts,
    Segment,
    SegmentPricer,
    price,
)

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
CONFIG = DEFAULT_CONFIG
FACTS = LeadFacts(
    kind="seller",
    quality_score=60,
    fraud_score=0.1,
    created_at=NOW - timedelta(days=3),
    exclusivity=Exclusivity.EXCLUSIVE,
    sales_count=0,
)
SEGMENT = Segment(demand=800.0, available=400, market_demand=5_000.0)
BUSY = 5_000.0  # demand recorded across the market


def cents(facts: LeadFacts = FACTS, segment: Segment = SEGMENT, tier: str = "basic") -> int:
    return price(facts, segment, CONFIG, NOW, tier).final_cents


def test_each_factor_moves_the_price_the_right_way() -> None:
    assert (
        cents(replace(FACTS, quality_score=90)) > cents() > cents(replace(FACTS, quality_score=20))
    )
    assert cents(replace(FACTS, fraud_score=0.0)) > cents() > cents(replace(FACTS, fraud_score=0.6))
    assert (
        cents(segment=Segment(4_000, 400, BUSY)) > cents() > cents(segment=Segment(50, 400, BUSY))
    )
    # Scarce: fewer similar leads on sale (same demand per lead) costs more.
    assert (
        cents(segment=Segment(200, 100, BUSY)) > cents() > cents(segment=Segment(1_800, 900, BUSY))
    )
    fresh, old = replace(FACTS, created_at=NOW), replace(FACTS, created_at=NOW - timedelta(days=45))
    assert cents(fresh) > cents() > cents(old)
    shared = replace(FACTS, exclusivity=Exclusivity.SHARED)
    assert cents() > cents(shared) > cents(replace(shared, sales_count=1))
    assert cents(replace(shared, sales_count=1)) > cents(replace(shared, sales_count=2))
    assert cents(tier="basic") > cents(tier="pro") > cents(tier="enterprise")


def test_a_market_with_no_demand_recorded_yet_is_neutral_not_cheap() -> None:
    quiet = price(FACTS, Segment(0, 400, 0), CONFIG, NOW)
    cold = price(FACTS, Segment(0, 400, BUSY), CONFIG, NOW)

    assert quiet.steps[2].multiplier == 1.0
    assert quiet.steps[2].detail.startswith("no demand recorded")
    assert cold.steps[2].multiplier == 0.75  # others in the market sell; these do not


def test_the_explanation_adds_up_to_the_price() -> None:
    quoted = price(replace(FACTS, quality_score=80), SEGMENT, CONFIG, NOW, "pro")

    assert [s.name for s in quoted.steps] == [
        "quality",
        "fraud",
        "demand",
        "supply",
        "freshness",
        "exclusivity",
        "plan",
    ]
    assert quoted.base_cents == 12_500
    assert quoted.base_cents + sum(s.contribution_cents for s in quoted.steps) == quoted.final_cents
    assert quoted.steps[0].detail == "quality score 80/100 (50 is neutral)"
    assert quoted.steps[-1].detail == "pro plan: 10% off"


def test_the_floor_and_ceiling_hold_and_say_so() -> None:
    junk = replace(FACTS, quality_score=0, fraud_score=1.0, created_at=NOW - timedelta(days=900))
    gold = replace(FACTS, quality_score=100, fraud_score=0.0, created_at=NOW)
    tight = CONFIG.model_copy(update={"floor_cents": 9_000, "ceiling_cents": 15_000})

    low = price(junk, SEGMENT, tight, NOW)
    high = price(gold, Segment(10_000, 10, BUSY), tight, NOW)

    assert low.final_cents == 9_000
    assert low.steps[-1].name == "floor"
    assert high.final_cents == 15_000
    assert high.steps[-1].name == "ceiling"


@given(
    quality=st.integers(0, 100),
    fraud=st.floats(0, 1),
    age_days=st.floats(0, 3_000),
    sales=st.integers(0, 9),
    exclusive=st.booleans(),
    demand=st.floats(0, 1e6),
    available=st.integers(0, 10**6),
    tier=st.sampled_from(["basic", "pro", "enterprise"]),
    floor=st.integers(1, 20_000),
    span=st.integers(0, 100_000),
)
def test_any_inputs_give_a_bounded_deterministic_price_that_adds_up(
    quality: int,
    fraud: float,
    age_days: float,
    sales: int,
    exclusive: bool,
    demand: float,
    available: int,
    tier: str,
    floor: int,
    span: int,
) -> None:
    config = CONFIG.model_copy(update={"floor_cents": floor, "ceiling_cents": floor + span})
    facts = LeadFacts(
        kind="buyer",
        quality_score=quality,
        fraud_score=fraud,
        created_at=NOW - timedelta(days=age_days),
        exclusivity=Exclusivity.EXCLUSIVE if exclusive else Exclusivity.SHARED,
        sales_count=sales,
    )
    segment = Segment(demand, available, demand)

    quoted = price(facts, segment, config, NOW, tier)

    assert config.floor_cents <= quoted.final_cents <= config.ceiling_cents
    assert quoted.base_cents + sum(s.contribution_cents for s in quoted.steps) == quoted.final_cents
    assert quoted == price(facts, segment, config, NOW, tier)
    # The recompute's and search's fast path is the same arithmetic.
    pricer = SegmentPricer(7_500, segment, config, NOW, tier)
    for _ in range(2):  # the second time from the pricer's remembered freshness
        price_cents = pricer(quality, fraud, facts.created_at, facts.exclusivity, sales)
        assert price_cents == quoted.final_cents


@pytest.mark.parametrize("tier", ["basic", "enterprise"])
def test_one_segment_pricer_prices_many_leads_as_each_alone(tier: str) -> None:
    # The recompute prices a whole segment with one pricer, which remembers the freshness of
    # each age in days it has seen; each lead still gets its own price. Every combination,
    # in a shuffled order, so each remembered factor is looked up among leads that differ in
    # everything else.
    leads = [
        (quality, fraud, days + hours / 24, sales, exclusivity)
        for quality in range(0, 101, 9)
        for fraud in (0.0, 0.35)
        for days in range(0, 75, 2)
        for hours in (0, 23)
        for sales in range(4)
        for exclusivity in Exclusivity
    ]
    random.Random(7).shuffle(leads)
    segment = Segment(800.0, 400, BUSY)
    pricer = SegmentPricer(12_500, segment, CONFIG, NOW, tier)
    for quality, fraud, age_days, sales, exclusivity in leads:
        facts = LeadFacts(
            "seller", quality, fraud, NOW - timedelta(days=age_days), exclusivity, sales
        )
        expected = price(facts, segment, CONFIG, NOW, tier).final_cents
        assert pricer(quality, fraud, facts.created_at, exclusivity, sales) == expected
