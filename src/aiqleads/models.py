"""Every domain's tables, imported in one place for Alembic and the tests."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "aiqleads.accounts.models",
    "aiqleads.mail.models",
    "aiqleads.leads.models",
    "aiqleads.ingest.models",
    "aiqleads.quality.models",
    "aiqleads.checkout.models",
    "aiqleads.demand.models",
    "aiqleads.audit.models",
    "aiqleads.pricing.models",
    "aiqleads.search.models",
    "aiqleads.notifications.models",
    "aiqleads.ledger.models",
    "aiqleads.kit.idempotency",
    "aiqleads.cart.models",
    "aiqleads.billing.models",
    "aiqleads.disputes.models",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
