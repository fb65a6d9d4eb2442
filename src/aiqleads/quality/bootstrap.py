"""Training rows for the first fraud model, from generated records with known labels.

Operators' review decisions replace this over time (`aiqleads fraud train`); until there
are enough of them, generated examples keep both classes represented.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from aiqleads.ingest.connectors.mapped import candidate_from
from aiqleads.ingest.sources import SourceCatalog
from aiqleads.ingest.synthetic import generate
from aiqleads.markets.catalog import MarketCatalog
from aiqleads.quality import fraud
from aiqleads.quality.clean import clean


def synthetic_rows(
    count: int, *, seed: int, now: datetime, markets: MarketCatalog, sources: SourceCatalog
) -> tuple[list[dict[str, float]], list[int]]:
    """Fraud features and labels of `count` generated records."""
    records = generate(count, seed=seed, now=now, fraud_rate=0.15)
    ips = Counter(r.record.payload.get("submitted_ip") for r in records)
    rows, labels = [], []
    for item in records:
        source = sources.get(item.source)
        cleaned = clean(candidate_from(item.record.payload), "seller", markets)
        market = markets.get(cleaned.fields.get("market") or "")
        ip = item.record.payload.get("submitted_ip")
        ctx = fraud.Context(
            typical_price_cents=market.typical_list_price_cents if market else None,
            same_ip_last_hour=ips[ip] if ip else 0,
            consent_expected=bool(source and source.consent_required),
        )
        rows.append(fraud.features(cleaned.fields, cleaned.problems, ctx))
        labels.append(int(item.is_fraud))
    return rows, labels
