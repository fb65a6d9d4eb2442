"""holds remember when their buyer was warned that they lapse soon

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("holds", sa.Column("warned_at", dialect.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("holds", "warned_at")  # SQLite 3.35+ drops a column in place
