"""disputes: a buyer's dispute of one purchase, its evidence and the decision

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("purchase_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(
                "wrong_number",
                "disconnected",
                "not_the_owner",
                "duplicate",
                "fake",
                "no_consent",
                name="disputereason",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "approved", "rejected", name="disputestatus", native_enum=False, length=10
            ),
            nullable=False,
        ),
        sa.Column("evidence", dialect.JSONType, nullable=False),
        sa.Column("auto_decided", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("refund_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("decided_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("refund_cents >= 0", name=op.f("ck_disputes_refund_not_negative")),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_disputes_buyer_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_disputes_lead_id_leads"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_disputes_purchase_id_purchases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_disputes_purchase_id")),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disputes_buyer_created", ["buyer_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_disputes_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            "ix_disputes_status_created", ["status", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index("ix_disputes_status_created")
        batch_op.drop_index(batch_op.f("ix_disputes_lead_id"))
        batch_op.drop_index("ix_disputes_buyer_created")

    op.drop_table("disputes")
