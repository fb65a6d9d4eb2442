"""SQLite's FTS5 index re-indexes a lead's words only when they change

`leads_fts_update` fired for every UPDATE that set `search_text`, and ingestion rewrites a
merged lead whole, mostly with the same words: each such UPDATE deleted the words from FTS5
and added them again. With `WHEN old.search_text IS NOT new.search_text`, 2,000 rewritten
leads took 389 ms instead of 736 (UPDATE and commit). PostgreSQL's tsvector is a generated
column and unchanged.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from aiqleads.kit import dialect

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect.replace_sqlite_fts_update_trigger(op.get_bind(), only_changed=True)


def downgrade() -> None:
    dialect.replace_sqlite_fts_update_trigger(op.get_bind(), only_changed=False)
