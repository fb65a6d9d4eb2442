"""The quality score (0..100) pricing uses: completeness, validity, freshness, source trust."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiqleads.quality.problems import Problem

# What a buyer wants filled in, by importance.
_COMPLETENESS = {
    "phone": 3.0,
    "email": 2.0,
    "first_name": 1.0,
    "last_name": 1.0,
    "address_line1": 2.0,
    "postal_code": 1.0,
    "property_type": 1.0,
    "beds": 0.5,
    "baths": 0.5,
    "living_area_sqft": 0.5,
    "year_built": 0.5,
    "list_price_cents": 1.0,
    "consent_captured_at": 1.0,
}
_PRECISION = {"source": 1.0, "zip": 0.7, "city": 0.4}
FRESH_DAYS = 90.0


def quality_score(
    f: dict[str, Any],
    problems: Sequence[Problem],
    trust: float,
    seen_at: datetime,
    now: datetime,
) -> int:
    """Weighted blend of completeness, validity, freshness and trust, rounded to an integer."""
    completeness = sum(w for k, w in _COMPLETENESS.items() if f.get(k) not in (None, "")) / sum(
        _COMPLETENESS.values()
    )
    warnings = sum(1 for p in problems if p.severity == "warning")
    validity = max(0.0, 1.0 - 0.15 * warnings) * _PRECISION.get(
        f.get("geocode_precision") or "", 0.2
    )
    age_days = max((now - seen_at).total_seconds() / 86400, 0.0)
    freshness = max(0.0, 1.0 - age_days / FRESH_DAYS)
    score = 100 * (0.4 * completeness + 0.25 * validity + 0.15 * freshness + 0.2 * trust)
    return max(0, min(100, round(score)))
