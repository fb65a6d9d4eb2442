"""ingestion run heartbeat, the fraud features a lead was scored on

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingestion_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", dialect.UTCDateTime(), nullable=True))
    with op.batch_alter_table("leads") as batch:
        batch.add_column(
            sa.Column("fraud_features", dialect.JSONType, nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("fraud_features")
    with op.batch_alter_table("ingestion_runs") as batch:
        batch.drop_column("heartbeat_at")
