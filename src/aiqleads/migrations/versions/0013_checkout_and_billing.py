"""checkout and billing: orders, purchases bound to their order and hold, subscriptions,
invoices, Stripe's events

No release wrote purchases (checkout did not exist before this revision), so the table is
made again with its new columns rather than altered around rows it never had.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status IN ('pending', 'active', 'past_due')")
PROVIDER = sa.Enum("stripe", "manual", "credits", name="provider", native_enum=False, length=10)


def _enum(name: str, *values: str, length: int = 16) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


def _fk(column: str, table: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="RESTRICT"
    )


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("total_cents >= 0", name=op.f("ck_orders_total_not_negative")),
        _fk("buyer_id", "orders", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_buyer_created", "orders", ["buyer_id", "created_at"])

    op.drop_table("purchases")
    op.create_table(
        "purchases",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("status", _enum("purchasestatus", "paid", "refunded"), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("refunded_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_purchases_price_not_negative")),
        _fk("buyer_id", "purchases", "users"),
        _fk("lead_id", "purchases", "leads"),
        _fk("order_id", "purchases", "orders"),
        _fk("hold_id", "purchases", "holds"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("lead_id", "buyer_id", name=op.f("uq_purchases_lead_id_buyer_id")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_purchases_hold_id")),
    )
    op.create_index("ix_purchases_buyer_created", "purchases", ["buyer_id", "created_at", "id"])
    op.create_index(op.f("ix_purchases_lead_id"), "purchases", ["lead_id"])
    op.create_index(op.f("ix_purchases_order_id"), "purchases", ["order_id"])
    op.create_index(
        "uq_purchases_exclusive",
        "purchases",
        ["lead_id"],
        unique=True,
        sqlite_where=sa.text("exclusive"),
        postgresql_where=sa.text("exclusive"),
    )

    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            _enum("subscriptionstatus", "pending", "active", "past_due", "canceled"),
            nullable=False,
        ),
        sa.Column("provider", PROVIDER, nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("current_period_start", dialect.UTCDateTime(), nullable=True),
        sa.Column("current_period_end", dialect.UTCDateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("grace_until", dialect.UTCDateTime(), nullable=True),
        sa.Column("provider_updated_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("ended_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        _fk("user_id", "subscriptions", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "provider", "provider_ref", name=op.f("uq_subscriptions_provider_provider_ref")
        ),
    )
    op.create_index(
        "ix_subscriptions_status_period", "subscriptions", ["status", "current_period_end"]
    )
    op.create_index(
        "uq_subscriptions_live_user",
        "subscriptions",
        ["user_id"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )

    op.create_table(
        "invoices",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            _enum("invoicekind", "subscription", "credit_pack", "purchase", length=20),
            nullable=False,
        ),
        sa.Column(
            "status", _enum("invoicestatus", "open", "paid", "void", length=10), nullable=False
        ),
        sa.Column("provider", PROVIDER, nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("lines", dialect.JSONType, nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=True),
        sa.Column("credit_pack", sa.String(length=40), nullable=True),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("period_start", dialect.UTCDateTime(), nullable=True),
        sa.Column("period_end", dialect.UTCDateTime(), nullable=True),
        sa.Column("checkout_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("paid_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("paid_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_invoices_amount_not_negative")),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_invoices_credits_not_negative")),
        _fk("order_id", "invoices", "orders"),
        _fk("subscription_id", "invoices", "subscriptions"),
        _fk("user_id", "invoices", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("order_id", name=op.f("uq_invoices_order_id")),
        sa.UniqueConstraint(
            "provider", "provider_ref", name=op.f("uq_invoices_provider_provider_ref")
        ),
    )
    op.create_index("ix_invoices_status_created", "invoices", ["status", "created_at"])
    op.create_index(op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"])
    op.create_index("ix_invoices_user_created", "invoices", ["user_id", "created_at", "id"])

    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payload", dialect.JSONType, nullable=False),
        sa.Column("created", dialect.UTCDateTime(), nullable=False),
        sa.Column("received_at", dialect.UTCDateTime(), nullable=False),
        sa.Column(
            "status",
            _enum("eventstatus", "pending", "processed", "failed", length=10),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("processed_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
    )
    op.create_index("ix_payment_events_status_due", "payment_events", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("payment_events")
    op.drop_table("invoices")
    op.drop_table("subscriptions")
    op.drop_table("purchases")
    op.create_table(
        "purchases",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_purchases_price_not_negative")),
        _fk("buyer_id", "purchases", "users"),
        _fk("lead_id", "purchases", "leads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("lead_id", "buyer_id", name=op.f("uq_purchases_lead_id_buyer_id")),
    )
    op.create_index(op.f("ix_purchases_buyer_id"), "purchases", ["buyer_id"])
    op.create_index(op.f("ix_purchases_lead_id"), "purchases", ["lead_id"])
    op.drop_table("orders")
