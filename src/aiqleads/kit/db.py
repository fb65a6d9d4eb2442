"""Engines, sessions and the one-transaction-per-unit-of-work rule.

SQLite is opened the way a server needs it: WAL (readers never block the writer), foreign
keys on, a busy timeout, and write transactions started with BEGIN IMMEDIATE so two writers
queue on the lock instead of deadlocking when a read transaction upgrades to a write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from aiqleads.kit import dialect
from aiqleads.kit.dialect import UTCDateTime, UuidType
from aiqleads.kit.errors import AppError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Each connection's page cache (the default is 2 MiB: a batch of leads overflowed it and spilled
# to the WAL mid-transaction) and memory-mapped reads, shared across connections through the
# OS page cache (NullPool opens a connection per unit of work, so its own cache starts cold).
SQLITE_CACHE_KIB = 32 * 1024
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
_BEGIN_OPTION = "aiqleads_sqlite_begin"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UuidPk:
    """Mixin: a random UUID primary key."""

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=uuid.uuid4)


class Timestamped:
    """Mixin: created/updated times, set by the service from its clock."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


def json_dumps(value: Any) -> str:
    """JSON columns' serializer: orjson (several times faster than the standard library on
    the payloads ingestion stores); anything it cannot encode becomes its string, as does an
    integer beyond 64 bits (through the standard library)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str)


def json_loads(text: str | bytes) -> Any:
    """JSON columns' deserializer: orjson, and the standard library for what orjson refuses
    and `json_dumps` wrote (an integer beyond 64 bits, which a raw payload may carry)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# Settings of every PostgreSQL session the application opens (ADR 0006); its queries are
# short.
PG_SESSION_SETTINGS = {
    # The JIT compiles a plan it over-estimates for longer than the query then runs.
    "jit": "off",
    # Parallel workers cost more to start (tens of ms) than a search runs, and under
    # concurrent requests there are no idle cores for them.
    "max_parallel_workers_per_gather": "0",
    # A text search's bitmap of 50,000 matches outgrew the default 4 MB and went lossy: every
    # row of 58,000 pages was checked against the words again (405 -> 209 ms for a common
    # word in a market of 180,000 leads on sale). Per sort or bitmap node, per connection.
    "work_mem": "16MB",
}


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has closed (a restart, an idle timeout, a
    terminated backend) is replaced before a request gets it.

    This asks asyncpg, which has seen the socket close, instead of `pool_pre_ping`'s round
    trips (BEGIN, an empty query, ROLLBACK on every checkout: about 0.9 ms of this process's
    CPU per request, measured on the search benchmark). A connection that dies in the moment
    between this check and its first query fails that one request, and SQLAlchemy then
    discards every connection opened before the failure."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the server closed this connection")


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""
    parsed = make_url(url)
    json_options: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
        # A database error's message leaves out the statement's values: they are consumers'
        # names, phones and e-mails, and the message goes to logs and run errors.
        "hide_parameters": True,
    }
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            # No overflow: an overflow connection is closed when it is given back, so a burst
            # beyond the pool paid for a new connection per request (start-up, type
            # introspection, an empty statement cache). Waiting for a pooled one is cheaper.
            max_overflow=0,
            connect_args={"server_settings": PG_SESSION_SETTINGS},
            **json_options,
        )
        event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
        return engine

    database = parsed.database or ""
    on_file = bool(database) and database != ":memory:"
    if on_file:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # A file's connections are pooled like PostgreSQL's. Opened per unit of work (NullPool
    # until 2026-12-03), each cost a thread, seven PRAGMAs, the schema parsed again and an empty
    # page and statement cache: 4.2 -> 0.7 ms for a one-query unit of work on the search
    # benchmark's store. The pool also keeps the write-ahead log open: when the last
    # connection to a WAL database closes, SQLite checkpoints the whole log into the file,
    # syncs and deletes it (80-190 ms per ingested batch when every unit of work was the last;
    # an idle `sqlite3` connection was held open for that until pooling made it needless).
    # An aiosqlite connection's thread is not a daemon, so the engine must be disposed
    # (`Runtime.close`) before the process can exit. `:memory:` is one database per connection
    # and is not pooled.
    pooling: dict[str, Any] = (
        {"poolclass": AsyncAdaptedQueuePool, "pool_size": pool_size, "max_overflow": 0}
        if on_file
        else {"poolclass": NullPool}
    )
    engine = create_async_engine(url, **pooling, **json_options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so `_on_begin` decides how to begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.close()
        dbapi_connection.create_function(
            dialect.SQLITE_COVERS, 3, dialect.sqlite_covers, deterministic=True
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


PendingJob = tuple[str, dict[str, Any]]
_PENDING_JOBS = "aiqleads_pending_jobs"


def defer_job(session: AsyncSession, name: str, kwargs: dict[str, Any]) -> None:
    """Remember a job to send once this session's transaction commits."""
    session.info.setdefault(_PENDING_JOBS, []).append((name, kwargs))


class Database:
    """The engine and session factory of one process, and its unit-of-work boundary."""

    def __init__(
        self,
        engine: AsyncEngine,
        dispatch: Callable[[list[PendingJob]], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._dispatch = dispatch
        # SQLite has one writer at a time. Its busy handler makes a waiting writer sleep and
        # try again (1, 2, 5, 10 ... 100 ms), so writers of one process that queued on the
        # file lock slept past the moment it was free: 50 concurrent checkouts ran at 24/s
        # with 13 ms of work each. This process's writers queue here instead, first come
        # first served, and the next begins as the last commits. (Other processes still
        # meet the busy handler.)
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    def set_dispatcher(self, dispatch: Callable[[list[PendingJob]], Awaitable[None]]) -> None:
        self._dispatch = dispatch

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """One transaction: commit on success, roll back on error; jobs go out after commit.

        A failing `AppError(commit=True)` still commits (a failed login is counted).
        Jobs deferred in a rolled-back transaction are dropped with it.
        """
        session = self.sessionmaker()  # connects at its first statement, not here
        writer = self._writer if write else None
        if writer is not None:
            # As long as SQLite's busy handler would have waited, then the same error.
            try:
                async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                    await writer.acquire()
            except TimeoutError:
                raise sa.exc.OperationalError(
                    "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
                ) from None
        committed = False
        try:
            if write:
                await session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})
            try:
                yield session
            except AppError as exc:
                if exc.commit:
                    await session.commit()
                    committed = True
                raise
            await session.commit()
            committed = True
        finally:
            jobs: list[PendingJob] = session.info.pop(_PENDING_JOBS, [])
            try:
                if not committed:
                    jobs = []
                    await session.rollback()
                await session.close()
            finally:
                if writer is not None:
                    writer.release()
            if jobs and self._dispatch is not None:
                await self._dispatch(jobs)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
