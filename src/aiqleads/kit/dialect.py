"""The SQLite/PostgreSQL seam: portable column types and PostgreSQL-only DDL live here.

Domains import their column types from this module and never test the dialect themselves;
the SQLite path sits next to each PostgreSQL specific so both stay visible together.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect

# JSON everywhere, JSONB (indexable, compact) on PostgreSQL.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

# SQLAlchemy's Uuid is native UUID on PostgreSQL and CHAR(32) on SQLite.
UuidType = sa.Uuid


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python, whatever the database keeps.

    SQLite has no time zones and hands back naive values; PostgreSQL uses timestamptz.
    Naive datetimes are refused on the way in, so a local time can never sneak in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def upsert(dialect_name: str, table: Any) -> Any:
    """`INSERT ... ON CONFLICT` for the dialect at hand (both speak it, with RETURNING)."""
    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


POSTGRES_EXTENSIONS = ("postgis",)


def is_postgres(bind: Connection) -> bool:
    return bind.dialect.name == "postgresql"


def create_extensions(bind: Connection) -> None:
    """PostgreSQL extensions the schema needs (PostGIS); SQLite needs none."""
    if is_postgres(bind):
        for name in POSTGRES_EXTENSIONS:
            bind.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))


# Tables that extensions own (PostGIS's SRID catalogue); migrations must never touch them.
EXTENSION_TABLES = frozenset({"spatial_ref_sys"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: leave extension-owned and PostgreSQL-computed objects out of comparison."""
    if type_ == "table":
        return name not in EXTENSION_TABLES
    if reflected and type_ == "column":
        return name not in PG_GENERATED_COLUMNS.get(obj.table.name, frozenset())
    if reflected and type_ == "index":
        return name not in PG_ONLY_INDEXES
    return True


def str_enum(cls: type[enum.StrEnum], length: int = 16) -> sa.Enum:
    """A StrEnum stored as its value in a VARCHAR (no native enum: adding a member is data)."""
    return sa.Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


# Columns PostgreSQL computes itself (PostGIS geography); the ORM never writes them, so they
# live in migrations only and schema comparison leaves them out.
PG_GENERATED_COLUMNS = {"leads": frozenset({"geog"})}
PG_ONLY_INDEXES = frozenset({"ix_leads_geog"})


class Statistics:
    """Keeps the planner's statistics of tables a bulk load grows (PostgreSQL).

    Autovacuum analyses a growing table with a delay of a minute or more, and not at all where
    it is switched off. A first bulk load into empty tables is meanwhile planned with no
    statistics, and a key lookup (`source = ? AND source_key IN (...)`) then scans every row of
    the source instead of probing the index: on 100,000 records that took a third of the run.
    So the writer counts its rows and runs ANALYZE once they reach 1,000 plus 20 % of what the
    table held at the last analysis (autovacuum's rule, counted in-process so it does not wait
    for the statistics collector). SQLite plans these lookups by index without statistics, so
    nothing happens there."""

    def __init__(self, tables: tuple[str, ...]) -> None:
        self.tables = tables
        self.written = 0
        self.known: float | None = None  # rows of the first table at its last analysis

    async def _rows(self, session: Any) -> float:
        value = await session.scalar(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
            {"name": self.tables[0]},
        )
        return max(float(value or 0), 0.0)  # -1: never analysed

    async def wrote(self, session: Any, rows: int) -> bool:
        """Count `rows` written in `session`'s transaction; True when it analysed."""
        if session.get_bind().dialect.name != "postgresql":
            return False
        self.written += rows
        if self.known is None:
            self.known = await self._rows(session)
        if self.written < 1_000 + 0.2 * self.known:
            return False
        for name in self.tables:
            await session.execute(sa.text(f'ANALYZE "{name}"'))
        self.known, self.written = await self._rows(session), 0
        return True
