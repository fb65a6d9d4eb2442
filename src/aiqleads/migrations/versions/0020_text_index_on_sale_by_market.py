"""PostgreSQL's text index: GIN over (market, search_tsv) of leads on sale (btree_gin)

A text search names its market and asks for leads on sale. The GIN index over every lead's
`search_tsv` gave a common word's entries across the whole table ("pool": 263,000 of
1,000,000 leads), which PostgreSQL then intersected with the market's leads on sale (180,000)
in a bitmap. Keyed by market too and holding only leads on sale, the index gives the matches
themselves (47,000): 209 -> 157 ms for that search alone, and 120 -> 67 ms for counting its
matches (facets). SQLite keeps its FTS5 index.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from aiqleads.kit import dialect

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect.create_text_index(op.get_bind())


def downgrade() -> None:
    dialect.drop_text_index(op.get_bind())
