"""Drop five indexes on leads that no query reads

Every lead written or rewritten by ingestion updates each index of the leads table. These
five serve no statement of the code (checked against every query on 2026-12-03):

- `ix_leads_status`: `ix_leads_status_changed` (status, status_changed_at) starts with it;
- `ix_leads_public_point`: searches near a point read `ix_leads_on_sale_geo` on SQLite (0021)
  and the GiST index of `geog` on PostgreSQL;
- `ix_leads_lat_lon`, `ix_leads_h3_r7`, `ix_leads_postal_code`: nothing filters or sorts
  leads by the exact point, the H3 cell or the ZIP code in SQL.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = {
    "ix_leads_status": ["status"],
    "ix_leads_public_point": ["public_latitude", "public_longitude"],
    "ix_leads_lat_lon": ["latitude", "longitude"],
    "ix_leads_h3_r7": ["h3_r7"],
    "ix_leads_postal_code": ["postal_code"],
}


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="leads")


def downgrade() -> None:
    for name, columns in _DROPPED.items():
        op.create_index(name, "leads", columns)
