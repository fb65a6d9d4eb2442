"""Plans, subscriptions, invoices and payments as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiqleads.billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Provider,
    Subscription,
    SubscriptionStatus,
)


class PlanOut(BaseModel):
    id: str
    name: str
    monthly_price_cents: int
    monthly_credits: int
    hold_extensions: list[str]
    rate_limit_per_minute: int
    custom_rate_limit: bool
    description: str
    lead_discounts: dict[str, float] = Field(
        description="Each market's discount on lead prices for this plan (pricing configuration)"
    )


class CreditPackOut(BaseModel):
    id: str
    name: str
    price_cents: int
    credits: int


class PlansOut(BaseModel):
    plans: list[PlanOut]
    credit_packs: list[CreditPackOut]
    payment_provider: Literal["stripe", "manual"]
    credit_value_cents: int = Field(default=1, description="What one credit buys, in cents")


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(min_length=1, max_length=40)


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    plan: str
    status: SubscriptionStatus
    provider: Provider
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    created_at: datetime


class CurrentPlanOut(BaseModel):
    plan: str
    subscription: SubscriptionOut | None


class InvoiceLine(BaseModel):
    description: str
    quantity: int
    unit_cents: int
    amount_cents: int


class InvoiceOut(BaseModel):
    id: uuid.UUID
    number: str
    user_id: uuid.UUID
    kind: InvoiceKind
    status: InvoiceStatus
    provider: Provider
    description: str
    lines: list[InvoiceLine]
    amount_cents: int
    credits: int
    plan: str | None
    credit_pack: str | None
    order_id: uuid.UUID | None
    period_start: datetime | None
    period_end: datetime | None
    checkout_url: str | None = Field(description="Where to pay an open Stripe invoice")
    created_at: datetime
    paid_at: datetime | None
    html_url: str
    pdf_url: str

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        base = f"/api/v1/billing/invoices/{invoice.id}"
        fields: dict[str, Any] = {
            name: getattr(invoice, name) for name in cls.model_fields if hasattr(invoice, name)
        }
        return cls(**{**fields, "html_url": f"{base}.html", "pdf_url": f"{base}.pdf"})


class PaymentOut(BaseModel):
    """How to pay: `checkout_url` is Stripe's page; without Stripe, an open invoice that an
    operator marks paid when the money arrives."""

    provider: Literal["stripe", "manual"]
    checkout_url: str | None
    invoice: InvoiceOut | None
    subscription: SubscriptionOut | None

    @classmethod
    def of(
        cls, stripe: bool, url: str | None, invoice: Invoice | None, sub: Subscription | None
    ) -> PaymentOut:
        return cls(
            provider="stripe" if stripe else "manual",
            checkout_url=url,
            invoice=InvoiceOut.of(invoice) if invoice is not None else None,
            subscription=SubscriptionOut.model_validate(sub) if sub is not None else None,
        )


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool
