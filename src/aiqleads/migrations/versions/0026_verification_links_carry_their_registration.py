"""A verification link carries the password and name of the registration it was sent for

Registering an unverified address again re-sent the link and dropped the new password, so a
stranger who registered an owner's address first kept a password to the account the owner
then verified. Each link now carries its registration's password hash and name, and
following it sets them (`accounts.service.AccountService.verify_email`).

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_tokens") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_tokens") as batch:
        batch.drop_column("name")
        batch.drop_column("password_hash")
