"""Set-based writes of many rows: one compiled statement, one executemany per chunk.

SQLAlchemy's ORM bulk paths group rows by the set of keys each one carries and compile a
statement per group; rows built from sparse records (a lead without a phone, another without
a price) then cost a compile and a round trip each. These helpers give every row the same
keys (the column's default, else NULL) and go through Core, so a batch of 500 leads is one
cached statement executed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.kit.dialect import upsert

_PK = "pk_"
_VALUE = "v_"


def column_default(column: sa.Column[Any]) -> Any:
    """The column's Python-side default value (None if it has none)."""
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    if default.is_scalar:
        return default.arg  # type: ignore[attr-defined]
    return default.arg(None)  # type: ignore[attr-defined]  # SQLAlchemy wraps 0-arg callables


def uniform(table: sa.Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that all carry the same keys: any key one row has, missing ones get the column's
    default (or None)."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row)
    defaults = {key: column_default(table.c[key]) for key in keys}
    out = []
    for row in rows:
        if len(row) == len(keys):
            out.append(row)
            continue
        full = {key: row[key] if key in row else defaults[key] for key in keys}
        out.append(full)
    return out


# SQLite allows 32,766 bound parameters per statement; IN lists stay well below it.
IN_LIST = 2_000


def chunks(rows: Sequence[Any], size: int = IN_LIST) -> Iterable[Sequence[Any]]:
    """`rows` in slices of at most `size` (for IN lists and executemany batches)."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts: bool = False,
    chunk: int = 1_000,
) -> None:
    """INSERT every row (ON CONFLICT DO NOTHING with `ignore_conflicts`)."""
    if not rows:
        return
    if ignore_conflicts:
        stmt: Any = upsert(session.get_bind().dialect.name, table).on_conflict_do_nothing()
    else:
        stmt = sa.insert(table)
    for part in chunks(uniform(table, rows), chunk):
        await session.execute(stmt, list(part))


async def update_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]], *, chunk: int = 1_000
) -> None:
    """UPDATE rows by primary key: each row has the key column(s) and the values to set;
    rows may set different columns (the missing ones are set to their default or NULL)."""
    if not rows:
        return
    pk = [c.name for c in table.primary_key.columns]
    full = uniform(table, rows)
    names = [k for k in full[0] if k not in pk]
    stmt = (
        sa.update(table)
        .where(*(table.c[name] == sa.bindparam(_PK + name) for name in pk))
        .values({name: sa.bindparam(_VALUE + name) for name in names})
    )
    params = [{(_PK if k in pk else _VALUE) + k: v for k, v in row.items()} for row in full]
    for part in chunks(params, chunk):
        await session.execute(stmt, list(part))


def string_limits(table: sa.Table) -> dict[str, int]:
    """The longest value each length-limited string column takes."""
    return {
        c.name: c.type.length
        for c in table.columns
        if isinstance(c.type, sa.String) and c.type.length is not None
    }
