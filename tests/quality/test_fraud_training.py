"""Training the fraud model: what is refused, and what is stored and activated."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from aiqleads.quality import fraud
from aiqleads.quality import service as quality
from aiqleads.quality.models import ModelVersion
from aiqleads.runtime import Runtime


def noise(count: int, seed: int) -> tuple[list[dict[str, float]], list[int]]:
    """Features that say nothing about the labels: no model ranks these better than a coin."""
    rng = random.Random(seed)
    rows = [{name: rng.random() for name in fraud.FEATURES} for _ in range(count)]
    labels = [i % 2 for i in range(count)]
    return rows, labels


async def stored(runtime: Runtime) -> list[tuple[int, bool]]:
    async with runtime.transaction(write=False) as session:
        models = await session.scalars(sa.select(ModelVersion).order_by(ModelVersion.version))
        return [(m.version, m.active) for m in models]


def test_too_few_examples_of_a_class_are_refused() -> None:
    rows, _ = noise(200, seed=1)
    labels = [1] * 19 + [0] * 181
    with pytest.raises(fraud.TrainingRefused, match="there are 19 and 181"):
        fraud.train(rows, labels, 1)


async def test_a_model_no_better_than_chance_is_not_activated_unless_forced(
    runtime: Runtime,
) -> None:
    rows, labels = noise(400, seed=3)
    _, metrics = fraud.train(rows, labels, 1)
    assert metrics["roc_auc"] < fraud.MIN_ROC_AUC  # the premise: the data is noise

    with pytest.raises(fraud.TrainingRefused, match="ROC AUC"):
        async with runtime.transaction() as session:
            await quality.save_model(session, rows, labels, runtime.clock, source="noise")
    assert await stored(runtime) == []

    async with runtime.transaction() as session:
        await quality.save_model(session, rows, labels, runtime.clock, source="noise", force=True)
    assert await stored(runtime) == [(1, True)]
