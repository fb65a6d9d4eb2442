"""A hold keeps the explained price it was quoted

The price quoted at cart-add is locked for the life of the hold, but `GET /leads/{id}/price`
explained only leads on sale, at today's figures: the buyer could not see how the price they
were about to pay came about (an exclusive lead in a cart is off sale). Each hold now keeps
its quote, steps and all, and the buyer holding the lead is shown that.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("quote", dialect.JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("quote")
