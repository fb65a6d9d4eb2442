"""Posting to the ledger, balances, history and reconciliation.

`Ledger.post` is the only writer: it checks that a transaction's entries are whole credits that
sum to zero, writes them, and moves the agents' cached balances in the same database
transaction (the platform's accounts cache none: see ledger.models). A debit that would take
an agent's credits below zero is refused with `insufficient_credits` by a conditional UPDATE,
and the CHECK constraint `credits_not_negative` refuses it again should any other path try.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from aiqleads.kit.bulk import insert_rows
from aiqleads.kit.dialect import upsert
from aiqleads.kit.errors import AppError, Conflict
from aiqleads.kit.writes import Writes, table_of
from aiqleads.ledger.models import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
)

log = structlog.get_logger(__name__)


class InsufficientCredits(AppError):
    status = 409
    code = "insufficient_credits"


class UnbalancedTransaction(ValueError):
    """A programming error: entries that do not sum to zero, or are not whole credits."""


@dataclass(frozen=True)
class Leg:
    account: LedgerAccount
    amount: int  # credits, + into the account, - out of it


@dataclass(frozen=True)
class HistoryRow:
    entry: LedgerEntry
    transaction: LedgerTransaction


@dataclass(frozen=True)
class Mismatch:
    """What reconciliation found wrong: a transaction whose entries do not sum to zero, or an
    account whose cached balance is not the sum of its entries."""

    subject: str  # "transaction" or "account"
    id: uuid.UUID
    expected: int
    found: int


class Ledger:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._dialect = session.get_bind().dialect.name

    async def account(
        self, kind: AccountKind, at: datetime, user_id: uuid.UUID | None = None
    ) -> LedgerAccount:
        """The account of `kind` owned by `user_id` (the platform's if None), opened on first
        use; two requests opening it at once get the same one."""
        owner = str(user_id) if user_id is not None else ""
        query = sa.select(LedgerAccount).where(
            LedgerAccount.kind == kind, LedgerAccount.owner == owner
        )
        found = await self.session.scalar(query)
        if found is not None:
            return found
        stmt = upsert(self._dialect, LedgerAccount.__table__).on_conflict_do_nothing(
            index_elements=["kind", "owner"]
        )
        await self.session.execute(
            stmt,
            [
                {
                    "id": uuid.uuid4(),
                    "kind": kind,
                    "owner": owner,
                    "user_id": user_id,
                    "balance": 0 if user_id is not None else None,  # cached for agents only
                    "created_at": at,
                }
            ],
        )
        opened = await self.session.scalar(query)
        assert opened is not None
        return opened

    async def credits(self, user_id: uuid.UUID, at: datetime) -> LedgerAccount:
        return await self.account(AccountKind.CREDITS, at, user_id)

    async def accounts(
        self, at: datetime, *wanted: tuple[AccountKind, uuid.UUID | None]
    ) -> list[LedgerAccount]:
        """Several accounts (kind, owner; None for the platform's) in one query, in the order
        asked; any not opened yet is opened as `account` does."""
        keys = [(kind, str(user_id) if user_id is not None else "") for kind, user_id in wanted]
        rows = await self.session.scalars(
            sa.select(LedgerAccount).where(
                sa.tuple_(LedgerAccount.kind, LedgerAccount.owner).in_(keys)
            )
        )
        found = {(a.kind, a.owner): a for a in rows}
        return [
            found.get(key) or await self.account(kind, at, user_id)
            for key, (kind, user_id) in zip(keys, wanted, strict=True)
        ]

    async def post(
        self,
        kind: TransactionKind,
        legs: Sequence[Leg],
        at: datetime,
        *,
        reference: str | None = None,
        memo: str = "",
        actor_id: uuid.UUID | None = None,
        writes: Writes | None = None,
    ) -> LedgerTransaction:
        """Write one balanced transaction and move the agents' balances it touches. Refused
        whole: `insufficient_credits` if an agent's credits would go below zero,
        `already_posted` if a transaction of this kind with this reference exists.
        Afterwards each agent leg's `account.balance` is the balance this transaction left
        (its row stays locked until the transaction ends); the platform's accounts are
        neither updated nor locked.

        With `writes`, the balances move now and the transaction and its entries are queued
        there; a duplicate reference then fails the commit instead of raising
        `already_posted`, so pass it only with a reference made new (a new order's id)."""
        amounts: dict[uuid.UUID, int] = defaultdict(int)  # by cached account
        kinds: dict[uuid.UUID, AccountKind] = {}
        for leg in legs:
            if not isinstance(leg.amount, int) or isinstance(leg.amount, bool) or not leg.amount:
                raise UnbalancedTransaction(f"an entry must be a non-zero whole number: {leg}")
            if leg.account.caches_balance:
                amounts[leg.account.id] += leg.amount
                kinds[leg.account.id] = leg.account.kind
        if len(legs) < 2 or sum(leg.amount for leg in legs) != 0:
            raise UnbalancedTransaction(f"entries must sum to zero: {legs}")
        transaction = LedgerTransaction(
            id=uuid.uuid4(),
            kind=kind,
            reference=reference,
            memo=memo,
            actor_id=actor_id,
            created_at=at,
        )
        if writes is None:
            self.session.add(transaction)
            try:  # first, so that a duplicate is refused before any balance moves
                await self.session.flush()
            except IntegrityError as exc:  # the unique (kind, reference)
                raise Conflict(
                    f"A {kind.value} for {reference} is already posted", code="already_posted"
                ) from exc
        # Accounts in one order, so two transactions over the same accounts cannot deadlock.
        balances: dict[uuid.UUID, int] = {}
        for account_id in sorted(amounts):
            amount = amounts[account_id]
            if not amount:
                continue
            moved = sa.update(LedgerAccount).where(LedgerAccount.id == account_id)
            if kinds[account_id] is AccountKind.CREDITS and amount < 0:
                moved = moved.where(LedgerAccount.balance + amount >= 0)
            result = await self.session.execute(
                moved.values(balance=LedgerAccount.balance + amount)
                .returning(LedgerAccount.balance)
                .execution_options(synchronize_session=False)
            )
            balance = result.scalar_one_or_none()
            if balance is None:
                raise InsufficientCredits("Not enough credits", extra={"needed": -amount})
            balances[account_id] = balance
        entries = [
            {
                "id": uuid.uuid4(),
                "transaction_id": transaction.id,
                "account_id": leg.account.id,
                "amount": leg.amount,
                "created_at": at,
            }
            for leg in legs
        ]
        if writes is None:
            await insert_rows(self.session, table_of(LedgerEntry), entries)
        else:
            writes.add(transaction)
            writes.insert(table_of(LedgerEntry), entries)
        for leg in legs:  # as the row now is (locked by this transaction until it ends)
            if leg.account.id in balances:
                set_committed_value(leg.account, "balance", balances[leg.account.id])
            elif leg.account.caches_balance:  # its legs cancelled out: not written
                self.session.expire(leg.account, ["balance"])
        log.info("ledger_posted", kind=kind.value, transaction=str(transaction.id))
        return transaction

    async def posted(self, kind: TransactionKind, reference: str) -> bool:
        """Whether a transaction of this kind with this reference exists."""
        found = await self.session.scalar(
            sa.select(LedgerTransaction.id).where(
                LedgerTransaction.kind == kind, LedgerTransaction.reference == reference
            )
        )
        return found is not None

    async def balance(self, account: LedgerAccount) -> int:
        """An agent's cached balance, or the sum of a platform account's entries."""
        if not account.caches_balance:
            total = await self.session.scalar(
                sa.select(sa.func.sum(LedgerEntry.amount)).where(
                    LedgerEntry.account_id == account.id
                )
            )
            return int(total or 0)
        value = await self.session.scalar(
            sa.select(LedgerAccount.balance).where(LedgerAccount.id == account.id)
        )
        return int(value or 0)

    async def history(
        self,
        account: LedgerAccount,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[HistoryRow]:
        """The account's entries, newest first, with their transactions."""
        query = (
            sa.select(LedgerEntry, LedgerTransaction)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == account.id)
        )
        if after is not None:
            query = query.where(sa.tuple_(LedgerEntry.created_at, LedgerEntry.id) < after)
        query = query.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit)
        return [HistoryRow(e, t) for e, t in (await self.session.execute(query)).all()]

    async def reconcile(self) -> list[Mismatch]:
        """Transactions whose entries do not sum to zero and agents' accounts whose cached
        balance is not the sum of their entries (none, unless something wrote around
        `post`)."""
        found: list[Mismatch] = []
        unbalanced = await self.session.execute(
            sa.select(LedgerEntry.transaction_id, sa.func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.transaction_id)
            .having(sa.func.sum(LedgerEntry.amount) != 0)
        )
        found += [Mismatch("transaction", t, 0, int(s)) for t, s in unbalanced.all()]
        sums = (
            sa.select(LedgerEntry.account_id, sa.func.sum(LedgerEntry.amount).label("total"))
            .group_by(LedgerEntry.account_id)
            .subquery()
        )
        drifted = await self.session.execute(
            sa.select(LedgerAccount.id, sa.func.coalesce(sums.c.total, 0), LedgerAccount.balance)
            .outerjoin(sums, sums.c.account_id == LedgerAccount.id)
            .where(
                LedgerAccount.balance.is_not(None),
                sa.func.coalesce(sums.c.total, 0) != LedgerAccount.balance,
            )
        )
        found += [Mismatch("account", a, int(t), int(b)) for a, t, b in drifted.all()]
        return found
