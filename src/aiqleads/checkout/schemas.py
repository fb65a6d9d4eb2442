"""Checkout and purchases as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aiqleads.checkout.models import PurchaseStatus
from aiqleads.search.schemas import LeadView


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_total_cents: int | None = Field(
        default=None,
        ge=0,
        description="The cart total you saw; if the cart changed since, nothing is bought "
        "(409 cart_changed)",
    )


class PurchaseOut(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    status: PurchaseStatus
    price_cents: int
    purchased_at: datetime
    refunded_at: datetime | None
    lead: LeadView  # revealed to its buyer


class CheckoutOut(BaseModel):
    order_id: uuid.UUID
    total_cents: int
    credits_spent: int
    balance: int = Field(description="Your credits after this checkout")
    invoice_id: uuid.UUID
    items: list[PurchaseOut]
