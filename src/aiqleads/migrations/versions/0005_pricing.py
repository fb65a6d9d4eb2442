"""pricing: configuration versions, snapshots, prices and their history; the audit log;
users' plans

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("detail", dialect.JSONType, nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_subject", ["subject_type", "subject_id"], unique=False
        )

    op.create_table(
        "price_snapshots",
        sa.Column("market", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("demand", sa.Float(), nullable=False),
        sa.Column("market_demand", sa.Float(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("as_of", dialect.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("market", "kind", name=op.f("pk_price_snapshots")),
    )
    op.create_table(
        "lead_prices",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("computed_at", dialect.UTCDateTime(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_lead_prices_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_prices_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_prices")),
    )
    op.create_table(
        "price_history",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("computed_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_price_history_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
    )
    with op.batch_alter_table("price_history", schema=None) as batch_op:
        batch_op.create_index("ix_price_history_lead_at", ["lead_id", "computed_at"], unique=False)

    op.create_table(
        "pricing_configs",
        sa.Column("market", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", dialect.JSONType, nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_pricing_configs_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("market", "version", name=op.f("pk_pricing_configs")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("plan", sa.String(length=20), nullable=False, server_default="basic")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("plan")

    op.drop_table("pricing_configs")
    with op.batch_alter_table("price_history", schema=None) as batch_op:
        batch_op.drop_index("ix_price_history_lead_at")

    op.drop_table("price_history")
    op.drop_table("lead_prices")
    op.drop_table("price_snapshots")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_subject")
        batch_op.drop_index(batch_op.f("ix_audit_events_created_at"))

    op.drop_table("audit_events")
