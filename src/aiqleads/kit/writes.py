"""Rows a transaction leaves behind, sent together as it commits: one statement on PostgreSQL.

A checkout leaves a dozen rows behind (the order, purchases, audit entries, the receipt, the
e-mail in the outbox, ledger entries, the stored idempotent answer) that nothing in the same
transaction reads again. Sent one by one, each was a round trip costing the API process about
0.3 ms of CPU through SQLAlchemy and asyncpg: most of a checkout's cost (ADR 0007). Queued
here, they go out when the session commits, after the ORM's own last flush (so a queued row
may refer to a row the ORM wrote):

- PostgreSQL: one statement, each write a data-modifying `WITH` query. Each runs exactly
  once and to completion, all from the snapshot taken before the statement; foreign keys and
  unique constraints are checked as always, at the end of the statement, so a purchase may
  refer to the order inserted beside it.
- SQLite: a statement per table (executemany for inserts), tables in the order their first
  row was queued; its foreign keys are checked at once, so queue a parent before its children.

What this asks of a caller: the rows are invisible to queries until the commit, so queue only
rows the transaction does not read again, and updates of rows it has locked and keeps in
memory (set them there with `set_committed_value`, or the ORM writes them a second time). A
transaction that rolls back drops its queue; writes cannot be queued inside a savepoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from aiqleads.kit.bulk import chunks, column_default, uniform

_KEY = "aiqleads_writes"
# PostgreSQL takes at most 32,767 parameters in one statement; a bigger queue is sent in parts.
MAX_PARAMETERS = 30_000
# Parts per statement. SQLAlchemy's compile of a WITH of n parts grows faster than n (a
# checkout of 200 leads, ~800 parts, spent 28 s compiling, on the event loop); a statement of
# at most this many is compiled once per shape and kept. A checkout of a few leads is one.
MAX_PARTS = 32

T = TypeVar("T")


def table_of(model: type[Any]) -> sa.Table:
    """A mapped class's table."""
    return cast(sa.Table, model.__table__)


@dataclass
class _Insert:
    table: sa.Table
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Update:
    table: sa.Table
    ids: list[Any]
    values: dict[str, Any]
    increments: dict[str, int]


class Writes:
    """The writes queued in one transaction (get it with `writes(session)`)."""

    def __init__(self, transaction: SessionTransaction) -> None:
        self.transaction = transaction
        self._inserts: dict[str, _Insert] = {}
        self._queue: list[_Insert | _Update] = []

    def add(self, obj: T) -> T:
        """Queue the INSERT of a new mapped object (not added to the session). Columns left
        None get their Python default first, set on the object too (its id, for one)."""
        state = sa.inspect(obj)
        if not state.transient:
            raise ValueError(f"{obj!r} belongs to a session: it would be written twice")
        row: dict[str, Any] = {}
        for prop in state.mapper.column_attrs:
            column = prop.columns[0]
            value = getattr(obj, prop.key)
            if value is None:
                value = column_default(column)
                if value is not None:
                    setattr(obj, prop.key, value)
            row[column.key] = value
        self.insert(cast(sa.Table, state.mapper.local_table), [row])
        return obj

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Queue rows for `table` (they go in with the table's other queued rows)."""
        if not rows:
            return
        pending = self._inserts.get(table.name)
        if pending is None:
            pending = self._inserts[table.name] = _Insert(table)
            self._queue.append(pending)
        pending.rows.extend(rows)

    def update(
        self,
        table: sa.Table,
        ids: list[Any],
        values: dict[str, Any],
        increments: dict[str, int] | None = None,
    ) -> None:
        """Queue `UPDATE table SET column = value, ..., column = column + n, ... WHERE id IN
        ids`."""
        # ids in one statement, with room for the other parts
        for part in chunks(ids, MAX_PARAMETERS // 3):
            self._queue.append(_Update(table, list(part), values, increments or {}))

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, session: Session) -> None:
        """Write everything queued (called as the transaction commits)."""
        queue, self._queue, self._inserts = self._queue, [], {}
        if session.get_bind().dialect.name != "postgresql":
            for write in queue:
                if isinstance(write, _Insert):  # executemany: every row the same keys
                    session.execute(sa.insert(write.table), uniform(write.table, write.rows))
                else:
                    statement, params = _update(write, "")
                    session.execute(statement, params)
            return
        # Parts of one statement all see the rows as they were before it: an update of a
        # row another part inserts or updates would miss it or be lost, so such an update
        # starts the next statement.
        group: list[tuple[Any, dict[str, Any]]] = []  # (statement, parameters)
        touched: set[tuple[str, Any]] = set()
        size = 0
        for write in queue:
            if isinstance(write, _Update):
                keys = {(write.table.name, i) for i in write.ids}
                part = _update(write, f"w{len(group)}_")
                count = len(write.ids) + len(part[1])
                if group and (
                    keys & touched or size + count > MAX_PARAMETERS or len(group) >= MAX_PARTS
                ):
                    _send_together(session, group)
                    group, touched, size = [], set(), 0
                    part = _update(write, "w0_")
                group.append(part)
                touched |= keys
                size += count
                continue
            for row in write.rows:
                if group and (size + len(row) > MAX_PARAMETERS or len(group) >= MAX_PARTS):
                    _send_together(session, group)
                    group, touched, size = [], set(), 0
                prefix = f"w{len(group)}_"
                group.append(
                    (
                        _insert(write.table, tuple(row), prefix),
                        {prefix + key: value for key, value in row.items()},
                    )
                )
                if "id" in row:
                    touched.add((write.table.name, row["id"]))
                size += len(row)
        _send_together(session, group)


# The statements are made once per shape and bound to new values each time: SQLAlchemy then
# finds its compiled form by a key it remembers on the statement object, where a statement
# built with its values inline needed that key worked out anew on every commit (about 1.5 ms
# for a checkout's) and a multi-row VALUES is never cached at all.
_MADE: dict[tuple[Any, ...], Any] = {}
_MADE_MAX = 512


def _made(shape: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    statement = _MADE.get(shape)
    if statement is None:
        if len(_MADE) >= _MADE_MAX:
            _MADE.clear()
        statement = _MADE[shape] = make()
    return statement


def _insert(table: sa.Table, keys: tuple[str, ...], prefix: str) -> Any:
    return _made(
        ("insert", table.name, keys, prefix),
        lambda: sa.insert(table).values(
            {key: sa.bindparam(prefix + key, type_=table.c[key].type) for key in keys}
        ),
    )


def _update(write: _Update, prefix: str) -> tuple[Any, dict[str, Any]]:
    table = write.table
    shape = ("update", table.name, tuple(write.values), tuple(write.increments), prefix)
    statement = _made(
        shape,
        lambda: (
            sa.update(table)
            .where(table.c.id.in_(sa.bindparam(prefix + "ids", expanding=True)))
            .values(
                {key: sa.bindparam(prefix + key, type_=table.c[key].type) for key in write.values}
                | {
                    key: table.c[key] + sa.bindparam(prefix + "by_" + key, type_=sa.Integer)
                    for key in write.increments
                }
            )
        ),
    )
    params: dict[str, Any] = {prefix + "ids": write.ids}
    params |= {prefix + key: value for key, value in write.values.items()}
    params |= {prefix + "by_" + key: n for key, n in write.increments.items()}
    return statement, params


def _send_together(session: Session, parts: list[tuple[Any, dict[str, Any]]]) -> None:
    """One statement: every part a data-modifying WITH query."""
    if not parts:
        return
    statement = _made(
        ("together", *(id(s) for s, _ in parts)),
        lambda: sa.select(sa.literal(1)).add_cte(
            *(s.cte(f"write_{i}") for i, (s, _) in enumerate(parts))
        ),
    )
    params: dict[str, Any] = {}
    for _, part in parts:
        params |= part
    session.execute(statement, params)


def writes(session: AsyncSession) -> Writes:
    """The session's queue for its current transaction (made on first use)."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    if transaction is None or sync.in_nested_transaction():
        raise RuntimeError("writes are queued inside a transaction, outside savepoints")
    queued = sync.info.get(_KEY)
    if queued is None or queued.transaction is not transaction:
        queued = sync.info[_KEY] = Writes(transaction)
    return cast(Writes, queued)


@event.listens_for(Session, "before_commit")
def _send_before_commit(session: Session) -> None:
    queued: Writes | None = session.info.pop(_KEY, None)
    if queued is None or queued.transaction is not session.get_transaction() or not queued:
        return  # nothing queued, or queued in a transaction that rolled back
    session.flush()
    queued.send(session)
