"""Invoices paid through Stripe keep their PaymentIntent, and the credits taken back

A refund or a lost chargeback at Stripe names the PaymentIntent it takes money from; the
credits that money bought are taken back from the buyer's balance (`billing.events`), once,
and `credits_reversed` says how many so far.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("payment_intent", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("credits_reversed", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.create_index("ix_invoices_payment_intent", ["payment_intent"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_index("ix_invoices_payment_intent")
        batch.drop_column("credits_reversed")
        batch.drop_column("payment_intent")
