"""search sort indexes led by the market (kit.dialect.create_sort_indexes)

A walk of a sort index (search.repository) reads leads on sale in the sort order until it has
a page. Keyed by the sort expression alone, the index interleaves the four markets: a price
search in one market read past the other markets' cheaper leads and, short of a page after
10,000 entries, fell back to a planned query (a GiST scan sorted by price, ~31 ms on
1,000,000 leads). Led by the market, a walk reads only the markets the search can reach.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from aiqleads.kit import dialect

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect.drop_sort_indexes(op.get_bind())
    dialect.create_sort_indexes(op.get_bind(), ("market",))


def downgrade() -> None:
    dialect.drop_sort_indexes(op.get_bind())
    dialect.create_sort_indexes(op.get_bind())
