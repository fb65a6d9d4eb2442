"""Fraud scoring: rule signals as features, combined by a logistic-regression model.

The model's parameters are plain JSON (coefficients and scaling), versioned in
`model_versions`; scoring is a dot product, so it costs microseconds per lead and the
contribution of each signal is the explanation shown to operators.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiqleads.quality.problems import Problem

FEATURES = (
    "phone_invalid",
    "phone_toll_free",
    "phone_voip",
    "email_invalid",
    "email_disposable",
    "name_gibberish",
    "name_missing",
    "no_contact",
    "price_deviation",
    "price_absurd",
    "outside_market",
    "ip_burst",
    "consent_missing",
    "conflicting_duplicate",
)

REASONS = {
    "phone_invalid": "The phone number is not a valid number",
    "phone_toll_free": "The phone number is toll-free or premium-rate",
    "phone_voip": "The phone number is a VoIP line",
    "email_invalid": "The e-mail address is malformed",
    "email_disposable": "The e-mail address is at a disposable domain",
    "name_gibberish": "The name looks like a test entry or keyboard mashing",
    "name_missing": "There is no name",
    "no_contact": "There is neither a valid phone nor a valid e-mail",
    "price_deviation": "The price is far from the market's typical price",
    "price_absurd": "The price is implausible for a home",
    "outside_market": "The coordinates are outside the market or inconsistent with the ZIP",
    "ip_burst": "Many leads came from the same IP address within an hour",
    "consent_missing": "The source requires consent and none was recorded",
    "conflicting_duplicate": "A duplicate of this lead states conflicting facts",
}

_TEST_WORDS = frozenset(
    {
        "test",
        "testing",
        "asdf",
        "qwer",
        "qwerty",
        "fake",
        "sample",
        "foo",
        "bar",
        "xxx",
        "none",
        "null",
        "na",
        "n/a",
        "abc",
        "aaa",
        "zzz",
        "lorem",
        "ipsum",
        "nobody",
        "anonymous",
    }
)
_VOWELS = re.compile(r"[aeiouy]", re.I)
_REPEAT = re.compile(r"(.)\1\1")


def is_gibberish(name: str | None) -> bool:
    """A test entry ("Test Test"), keyboard mash ("asdf"), or letters no name has."""
    if not name:
        return False
    low = name.lower().strip(".")
    if low in _TEST_WORDS or _REPEAT.search(low):
        return True
    letters = re.sub(r"[^a-z]", "", low)
    return len(letters) >= 4 and not _VOWELS.search(letters)


@dataclass(frozen=True, slots=True)
class Context:
    """What the record alone cannot tell: market prices, IP volume, merge conflicts."""

    typical_price_cents: int | None = None
    same_ip_last_hour: int = 0
    consent_expected: bool = False
    conflicting_duplicate: bool = False


def features(f: dict[str, Any], problems: Sequence[Problem], ctx: Context) -> dict[str, float]:
    """The fraud signals of one lead, each 0..1 (or a small magnitude for price deviation)."""
    codes = {p.code for p in problems}
    price = f.get("list_price_cents")
    deviation = 0.0
    absurd = 0.0
    if price and ctx.typical_price_cents:
        ratio = price / ctx.typical_price_cents
        deviation = min(abs(math.log(ratio)), 5.0)
        absurd = float(ratio > 20 or ratio < 0.05)
    if price is not None and (price < 1_000_000 or price > 10_000_000_000):  # < $10k or > $100M
        absurd = 1.0
    return {
        "phone_invalid": float("phone_invalid" in codes),
        "phone_toll_free": float(
            f.get("phone_type") in {"toll_free", "premium_rate", "shared_cost"}
        ),
        "phone_voip": float(f.get("phone_type") == "voip"),
        "email_invalid": float("email_invalid" in codes),
        "email_disposable": float(bool(f.get("email_disposable"))),
        "name_gibberish": float(
            is_gibberish(f.get("first_name")) or is_gibberish(f.get("last_name"))
        ),
        "name_missing": float(not (f.get("first_name") or f.get("last_name"))),
        "no_contact": float(not (f.get("phone") or f.get("email"))),
        "price_deviation": deviation,
        "price_absurd": absurd,
        "outside_market": float(
            bool(codes & {"coordinates_invalid", "coordinates_far_from_zip", "outside_markets"})
        ),
        "ip_burst": min(math.log1p(max(ctx.same_ip_last_hour - 2, 0)), 4.0),
        "consent_missing": float(ctx.consent_expected and not f.get("consent_captured_at")),
        "conflicting_duplicate": float(ctx.conflicting_duplicate),
    }


@dataclass(frozen=True, slots=True)
class FraudModel:
    """A logistic model over `FEATURES`: standardised inputs, one weight each."""

    version: int
    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float

    @classmethod
    def from_parameters(
        cls, version: int, features: Sequence[str], p: dict[str, Any]
    ) -> FraudModel:
        return cls(
            version,
            tuple(features),
            tuple(float(x) for x in p["means"]),
            tuple(float(x) for x in p["scales"]),
            tuple(float(x) for x in p["weights"]),
            float(p["intercept"]),
        )

    def parameters(self) -> dict[str, Any]:
        return {
            "means": list(self.means),
            "scales": list(self.scales),
            "weights": list(self.weights),
            "intercept": self.intercept,
        }

    def score(self, values: dict[str, float], top: int = 3) -> tuple[float, list[dict[str, Any]]]:
        """Probability of fraud and the signals that pushed it up most."""
        contributions = []
        z = self.intercept
        for name, mean, scale, weight in zip(
            self.features, self.means, self.scales, self.weights, strict=True
        ):
            c = weight * (values.get(name, 0.0) - mean) / scale
            z += c
            if values.get(name, 0.0) > 0 and c > 0:
                contributions.append((c, name))
        probability = 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))
        contributions.sort(reverse=True)
        reasons = [
            {"code": name, "message": REASONS[name], "weight": round(c, 3)}
            for c, name in contributions[:top]
        ]
        return round(probability, 4), reasons


def bootstrap_model() -> FraudModel:
    """The model shipped with the package (trained on generated data by `aiqleads fraud
    train --bootstrap`), used until an operator trains one from reviewed labels."""
    text = resources.files("aiqleads.quality").joinpath("data/fraud_bootstrap.json").read_text()
    data = json.loads(text)
    return FraudModel.from_parameters(0, data["features"], data["parameters"])


# Fewer examples of a class than this and the held-out quarter says nothing about the model.
MIN_EXAMPLES_PER_CLASS = 20
# A model ranking fraud barely better than a coin does is not put in charge unless forced.
MIN_ROC_AUC = 0.6


class TrainingRefused(ValueError):
    """The examples cannot make a model worth using; the message says why, for an operator."""


def train(
    rows: Sequence[dict[str, float]], labels: Sequence[int], version: int
) -> tuple[FraudModel, dict[str, Any]]:
    """Fit a class-balanced logistic regression; returns the model and held-out metrics.
    Raises TrainingRefused with fewer than MIN_EXAMPLES_PER_CLASS examples of either class."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import (
        average_precision_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x = np.array([[row.get(name, 0.0) for name in FEATURES] for row in rows], dtype=float)
    y = np.array(labels, dtype=int)
    fraudulent = sum(1 for label in labels if label)
    genuine = len(labels) - fraudulent
    if min(fraudulent, genuine) < MIN_EXAMPLES_PER_CLASS:
        raise TrainingRefused(
            f"training needs at least {MIN_EXAMPLES_PER_CLASS} fraudulent and "
            f"{MIN_EXAMPLES_PER_CLASS} genuine examples; there are {fraudulent} and {genuine}"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=7, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    clf = LogisticRegression(class_weight="balanced", max_iter=1000, C=1.0)
    clf.fit((x_train - scaler.mean_) / scale, y_train)
    probs = clf.predict_proba((x_test - scaler.mean_) / scale)[:, 1]
    predicted = (probs >= 0.5).astype(int)
    metrics = {
        "roc_auc": round(float(roc_auc_score(y_test, probs)), 4),
        "average_precision": round(float(average_precision_score(y_test, probs)), 4),
        "precision_at_0_5": round(float(precision_score(y_test, predicted, zero_division=0)), 4),
        "recall_at_0_5": round(float(recall_score(y_test, predicted, zero_division=0)), 4),
        "test_rows": int(len(y_test)),
        "positives": int(y.sum()),
    }
    model = FraudModel(
        version,
        FEATURES,
        tuple(float(v) for v in scaler.mean_),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in clf.coef_[0]),
        float(clf.intercept_[0]),
    )
    return model, metrics
