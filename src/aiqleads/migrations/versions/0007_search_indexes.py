"""search indexes: one per marketplace sort order over leads on sale, carrying every filtered
column (kit.dialect.create_search_indexes)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from aiqleads.kit import dialect

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect.create_search_indexes(op.get_bind())


def downgrade() -> None:
    dialect.drop_search_indexes(op.get_bind())
