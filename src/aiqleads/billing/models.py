"""Subscriptions, invoices and the payment provider's events.

Every payment and every checkout has an invoice (a checkout's is its receipt, paid in
credits). An invoice that grants credits does so once: the ledger posts one transaction per
invoice. Stripe's events are rows first (`payment_events`, keyed by Stripe's event id), so a
delivery is stored once however often it arrives, and one left unapplied by a crash is applied
by the sweeper.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class Provider(enum.StrEnum):
    STRIPE = "stripe"
    MANUAL = "manual"  # paid outside the product; an operator marks the invoice paid
    CREDITS = "credits"  # a checkout, paid from the credit balance


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first payment
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal is unpaid: the plan holds until the grace period ends
    CANCELED = "canceled"


LIVE_SUBSCRIPTION = "status IN ('pending', 'active', 'past_due')"


class Subscription(UuidPk, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # One live subscription per user, whatever the code above does.
        sa.Index(
            "uq_subscriptions_live_user",
            "user_id",
            unique=True,
            sqlite_where=sa.text(LIVE_SUBSCRIPTION),
            postgresql_where=sa.text(LIVE_SUBSCRIPTION),
        ),
        sa.Index("ix_subscriptions_status_period", "status", "current_period_end"),
        sa.UniqueConstraint("provider", "provider_ref"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    plan: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    status: Mapped[SubscriptionStatus] = mapped_column(str_enum(SubscriptionStatus), nullable=False)
    provider: Mapped[Provider] = mapped_column(str_enum(Provider, 10), nullable=False)
    # Stripe's subscription id ("sub_..."); none for a manual one.
    provider_ref: Mapped[str | None] = mapped_column(sa.String(255))
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the provider stated what this row holds (its event's `created`): an older event
    # arriving late changes nothing.
    provider_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InvoiceKind(enum.StrEnum):
    SUBSCRIPTION = "subscription"
    CREDIT_PACK = "credit_pack"
    PURCHASE = "purchase"  # a checkout's receipt


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


class Invoice(UuidPk, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        sa.UniqueConstraint("provider", "provider_ref"),
        sa.Index("ix_invoices_user_created", "user_id", "created_at", "id"),
        sa.Index("ix_invoices_status_created", "status", "created_at"),
        sa.CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        sa.CheckConstraint("credits >= 0", name="credits_not_negative"),
    )

    number: Mapped[str] = mapped_column(sa.String(32), nullable=False, unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    kind: Mapped[InvoiceKind] = mapped_column(str_enum(InvoiceKind, 20), nullable=False)
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus, 10), nullable=False)
    provider: Mapped[Provider] = mapped_column(str_enum(Provider, 10), nullable=False)
    # Stripe's Checkout Session ("cs_...") or invoice ("in_...") id.
    provider_ref: Mapped[str | None] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    # [{"description", "quantity", "unit_cents", "amount_cents"}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    credits: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)  # granted
    plan: Mapped[str | None] = mapped_column(sa.String(40))
    credit_pack: Mapped[str | None] = mapped_column(sa.String(40))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("subscriptions.id", ondelete="RESTRICT"), index=True
    )
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checkout_url: Mapped[str | None] = mapped_column(sa.String(2000))  # Stripe's payment page
    # Stripe's PaymentIntent that paid it ("pi_..."): refunds and chargebacks name it.
    payment_intent: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    # Credits taken back since (a refund or a lost chargeback at Stripe).
    credits_reversed: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, default=0, server_default="0"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_by: Mapped[uuid.UUID | None] = mapped_column(UuidType)  # the operator (manual)


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"  # gave up after its attempts; an operator looks


class PaymentEvent(Base):
    """One Stripe event as delivered, stored before anything is done with it."""

    __tablename__ = "payment_events"
    __table_args__ = (sa.Index("ix_payment_events_status_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # "evt_..."
    type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)  # by Stripe
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[EventStatus] = mapped_column(str_enum(EventStatus, 10), nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))


class PageStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETE = "complete"  # paid at Stripe (its subscription follows in events)
    EXPIRED = "expired"  # can no longer be paid


class PaymentPage(UuidPk, Base):
    """A Stripe Checkout page opened for a subscription. A buyer has at most one open: a new
    one is made only after the last is expired at Stripe, so two pages cannot both be paid
    (Stripe would then bill two subscriptions for one buyer)."""

    __tablename__ = "payment_pages"
    __table_args__ = (sa.Index("ix_payment_pages_user_status", "user_id", "status"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    plan: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    provider_ref: Mapped[str] = mapped_column(sa.String(255), nullable=False, unique=True)
    status: Mapped[PageStatus] = mapped_column(str_enum(PageStatus, 10), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
