"""lead_prices and price_history without foreign keys to leads (the recompute writes a million
rows at a time from leads it has just read; leads are never deleted)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from alembic import op
from sqlalchemy.exc import SAWarning

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = {
    "lead_prices": "fk_lead_prices_lead_id_leads",
    "price_history": "fk_price_history_lead_id_leads",
}


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    # SQLite rebuilds the table, reflecting `leads` for the key, whose expression indexes
    # (migration 0007) SQLAlchemy cannot reflect and says so; they are not touched.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        yield


def upgrade() -> None:
    with _quiet_reflection():
        for table, name in FOREIGN_KEYS.items():
            with op.batch_alter_table(table) as batch:
                batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with _quiet_reflection():
        for table, name in FOREIGN_KEYS.items():
            with op.batch_alter_table(table) as batch:
                batch.create_foreign_key(name, "leads", ["lead_id"], ["id"], ondelete="CASCADE")
