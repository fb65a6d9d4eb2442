"""cart holds: a lead held for a buyer at a locked price until the hold ends (one active hold
of an exclusive lead, one per buyer and lead)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "released",
                "expired",
                "purchased",
                name="holdstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("expires_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("ended_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_holds_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_holds_buyer_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_holds_lead_id_leads"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_holds_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index("ix_holds_status_expires", ["status", "expires_at"], unique=False)
        batch_op.create_index(
            "uq_holds_buyer_active",
            ["lead_id", "buyer_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.create_index(
            "uq_holds_exclusive_active",
            ["lead_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active' AND exclusive"),
            postgresql_where=sa.text("status = 'active' AND exclusive"),
        )


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_holds_exclusive_active",
            sqlite_where=sa.text("status = 'active' AND exclusive"),
            postgresql_where=sa.text("status = 'active' AND exclusive"),
        )
        batch_op.drop_index(
            "uq_holds_buyer_active",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index("ix_holds_status_expires")
        batch_op.drop_index(batch_op.f("ix_holds_buyer_id"))

    op.drop_table("holds")
