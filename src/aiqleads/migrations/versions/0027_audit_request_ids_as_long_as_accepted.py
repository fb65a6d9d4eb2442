"""Audit events keep request ids as long as the API accepts (128 characters)

The API takes and echoes an `X-Request-ID` of up to 128 characters, and every audited change
stores it in `audit_events.request_id`, which held 64: on PostgreSQL a longer id made each
audited change (cart add, checkout, grants, decisions) a 500.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite does not enforce a VARCHAR's length (and would copy the whole table to change it);
# on PostgreSQL widening a varchar rewrites nothing.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_events",
            "request_id",
            type_=sa.String(length=128),
            existing_type=sa.String(length=64),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE audit_events SET request_id = left(request_id, 64)")
        op.alter_column(
            "audit_events",
            "request_id",
            type_=sa.String(length=64),
            existing_type=sa.String(length=128),
        )
