"""SQLite's spatial search index carries the lead's id (kit.dialect.create_sqlite_geo_index)

A search near a point reads its matches from `ix_leads_on_sale_geo` and selects their ids. The
index held the point and every filtered column but not the id, so SQLite read each match's
row from the table for it: in an 8 km disk of Las Vegas with two filters, 8,000 rows and
39 ms; with the id in the index, 18 ms. PostgreSQL's GiST is unchanged (no index-only scan of
a geography there).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(carried: Sequence[str]) -> None:
    bind = op.get_bind()
    if dialect.is_postgres(bind):
        return
    bind.execute(sa.text(f"DROP INDEX {dialect.SEARCH_GEO_INDEX}"))
    dialect.create_sqlite_geo_index(bind, carried)


def upgrade() -> None:
    _rebuild(("id",))


def downgrade() -> None:
    _rebuild(())
