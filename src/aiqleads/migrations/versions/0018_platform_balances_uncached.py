"""ledger_accounts.balance: cached for agents' accounts only, NULL for the platform's

Every sale moved the platform's revenue account, so its cached balance was one row that every
checkout locked from its debit to its commit: concurrent checkouts queued behind each other
(and a second API process waited on the same row). The platform's balances are now summed
from their entries when asked (`ledger.service.Ledger.balance`); an agent's credits keep their
cached, locked, never-negative balance.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_ledger_accounts_balance_cached_for_agents"


def upgrade() -> None:
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.alter_column("balance", existing_type=sa.BigInteger(), nullable=True)
    op.execute("UPDATE ledger_accounts SET balance = NULL WHERE owner = ''")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f(CHECK), "(owner = '') = (balance IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(CHECK), type_="check")
    op.execute(
        "UPDATE ledger_accounts SET balance = (SELECT coalesce(sum(e.amount), 0) "
        "FROM ledger_entries e WHERE e.account_id = ledger_accounts.id) WHERE owner = ''"
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.alter_column("balance", existing_type=sa.BigInteger(), nullable=False)
