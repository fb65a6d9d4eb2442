"""SQLite: planner statistics for stores made before ingestion analysed them

SQLite never analyses by itself, and without statistics it prefers any index whose first
column is compared with `=`: a radius search sorted by distance walked every lead on sale
through `ix_leads_status_changed`. Ingestion now keeps the statistics as a store grows
(`kit.dialect.Statistics`); this analyses a store once on upgrade, so an existing one does
not wait for its next bulk run. Nothing to do on PostgreSQL (autovacuum analyses).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from aiqleads.kit.dialect import SQLITE_FULL_ANALYSIS

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_FULL_ANALYSIS)
        op.execute("ANALYZE")


def downgrade() -> None:
    """Statistics are not schema: they stay."""
