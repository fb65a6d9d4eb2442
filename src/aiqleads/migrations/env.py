"""Alembic environment: async engines for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from aiqleads.kit.db import Base, create_engine
from aiqleads.kit.dialect import include_object
from aiqleads.models import import_all_models

import_all_models()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite alters a table by rebuilding it (batch mode), and a rebuilt table that other
    tables reference can only be dropped with foreign keys off; the switch works only outside
    a transaction, so it goes to the driver's connection before the migrations begin one
    (SQLite's own recipe for altering a table: sqlite.org/lang_altertable.html)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    cursor.close()


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"a migration left rows whose foreign keys point nowhere: {broken}")


async def _main() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            await connection.run_sync(_sqlite_foreign_keys, False)
        await connection.run_sync(_run)
        if sqlite:  # checked before the commit, as enforcement would have
            await connection.run_sync(_check_foreign_keys)
        await connection.commit()
        if sqlite:
            await connection.run_sync(_sqlite_foreign_keys, True)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
asyncio.run(_main())
