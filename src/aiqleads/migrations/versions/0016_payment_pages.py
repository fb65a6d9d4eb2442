"""payment_pages: the Stripe Checkout pages opened for subscriptions, one open per buyer

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_pages",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "complete", "expired", name="pagestatus", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payment_pages_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_pages")),
        sa.UniqueConstraint("provider_ref", name=op.f("uq_payment_pages_provider_ref")),
    )
    with op.batch_alter_table("payment_pages", schema=None) as batch_op:
        batch_op.create_index("ix_payment_pages_user_status", ["user_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_pages", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_pages_user_status")
    op.drop_table("payment_pages")
