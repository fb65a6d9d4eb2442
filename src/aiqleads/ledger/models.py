"""Ledger accounts, transactions and their entries.

Every movement of credits is a transaction of two or more entries that sum to zero. An
account's balance is the sum of its entries. An agent's account caches it in
`ledger_accounts.balance`, updated in the same transaction as the entries and checked by the
reconciliation job; the platform's accounts (revenue, grants, refunds ...) cache nothing
(`balance` is NULL) and their balance is summed from the entries when asked. Every sale moves
the revenue account: a cached balance there would be one row that every checkout in the
marketplace locks until it commits, so checkouts would queue behind each other. The database
refuses a negative balance on an agent's credits account (a CHECK constraint), and refuses to
update or delete an entry or a transaction (triggers, `kit.dialect.create_append_only`).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import UTCDateTime, UuidType, str_enum


class AccountKind(enum.StrEnum):
    CREDITS = "credits"  # an agent's spendable credits: never below zero
    REVENUE = "revenue"  # the platform's, from leads sold
    GRANTS = "grants"  # credits operators granted (the manual payment provider)
    PROMOTIONS = "promotions"
    REFUNDS = "refunds"
    STRIPE_CLEARING = "stripe_clearing"  # paid through Stripe, not yet spent


class TransactionKind(enum.StrEnum):
    GRANT = "grant"
    PURCHASE = "purchase"
    REFUND = "refund"
    TOP_UP = "top_up"
    SUBSCRIPTION = "subscription"
    PROMOTION = "promotion"
    REVERSAL = "reversal"  # credits a payment bought, taken back (refunded or charged back)


class LedgerAccount(UuidPk, Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # One account per kind and owner; system accounts are owned by no one (`owner` "").
        sa.UniqueConstraint("kind", "owner"),
        sa.CheckConstraint("kind <> 'credits' OR balance >= 0", name="credits_not_negative"),
        # A cached balance on an agent's accounts, none on the platform's.
        sa.CheckConstraint("(owner = '') = (balance IS NULL)", name="balance_cached_for_agents"),
    )

    kind: Mapped[AccountKind] = mapped_column(str_enum(AccountKind, 20), nullable=False)
    # The owning user's id as text, "" for the platform's accounts (a NULL would not be
    # unique in a UNIQUE constraint).
    owner: Mapped[str] = mapped_column(sa.String(36), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # The sum of the entries, cached for an agent's account; NULL for the platform's.
    balance: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    @property
    def caches_balance(self) -> bool:
        """An agent's account caches its balance; the platform's accounts do not."""
        return self.user_id is not None


class LedgerTransaction(UuidPk, Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        # What a transaction is for (a purchase, a Stripe event, a dispute) is posted once.
        sa.UniqueConstraint("kind", "reference"),
    )

    kind: Mapped[TransactionKind] = mapped_column(str_enum(TransactionKind, 20), nullable=False)
    reference: Mapped[str | None] = mapped_column(sa.String(200))
    memo: Mapped[str] = mapped_column(sa.String(500), nullable=False, default="")
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UuidType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class LedgerEntry(UuidPk, Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.Index("ix_ledger_entries_account_at", "account_id", "created_at", "id"),
        sa.CheckConstraint("amount <> 0", name="amount_not_zero"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(
        UuidType,
        sa.ForeignKey("ledger_transactions.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("ledger_accounts.id", ondelete="RESTRICT"), nullable=False
    )
    amount: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # credits, signed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
