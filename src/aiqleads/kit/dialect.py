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
