"""`Idempotency-Key` for state-changing endpoints: a retried request is answered, not redone.

Everything happens in the request's own transaction, so a change and its stored answer commit
together or not at all:

- `begin` runs before the endpoint. On PostgreSQL it takes a transaction-scoped advisory lock
  on (caller, key) without waiting: if another request holds it, that request is still running
  and this one gets `409 idempotency_in_flight`. Then it looks for a stored answer: same
  request (method, path and body) -> `Replay` (the answer again, with `Idempotent-Replayed:
  true`); another request -> `422 idempotency_mismatch`.
- `Idempotency.complete` runs last in the endpoint and stores the answer (sent with the
  transaction's other queued writes as it commits).
- A request that fails (an invalid body, a business error, a crash) rolls back and so stores
  nothing: the key can be used again. A killed process's transaction rolls back too.
- On SQLite, write transactions run one at a time, so a concurrent duplicate waits for the
  first to commit and then gets its answer replayed.
- Keys are kept at least `KEEP_FOR` (24 h); the `idempotency.forget` job deletes older ones.

Keys belong to the caller: two users may use the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base
from aiqleads.kit.dialect import JSONType, UTCDateTime
from aiqleads.kit.errors import AppError, Conflict
from aiqleads.kit.writes import writes

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEEP_FOR = timedelta(hours=24)


class IdempotencyKey(Base):
    """The stored answer to the first request that carried a key."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    body: Mapped[Any] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class Replay(Exception):  # noqa: N818  (not an error: a stored answer, sent again)
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def replay_response(exc: Replay) -> Response:
    headers = {"Idempotent-Replayed": "true"}
    if exc.status == 204:  # No Content: nothing to send but the status
        return Response(status_code=exc.status, headers=headers)
    return JSONResponse(exc.body, status_code=exc.status, headers=headers)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same: method, path and body (JSON however spaced or
    ordered)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def key_of(request: Request, required: bool) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise AppError(
                f"This request needs an {HEADER} header", code="idempotency_key_required"
            )
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise AppError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
            code="invalid_idempotency_key",
        )
    return key


class Idempotency:
    """The key a request carries (None without one), in the request's transaction."""

    def __init__(self, owner: str, key: str | None, fingerprint: str, at: datetime) -> None:
        self.owner, self.key, self.fingerprint, self.at = owner, key, fingerprint, at

    async def complete(self, session: AsyncSession, status: int, body: BaseModel | None) -> None:
        """Store the answer with the change (call it last in the endpoint): queued with the
        transaction's other writes (`kit.writes`), which nothing reads back before the
        commit."""
        if self.key is None:
            return
        writes(session).add(
            IdempotencyKey(
                owner=self.owner,
                key=self.key,
                fingerprint=self.fingerprint,
                status=status,
                body=body.model_dump(mode="json") if body is not None else {},
                created_at=self.at,
            )
        )


async def begin(
    session: AsyncSession, request: Request, owner: str, at: datetime, *, required: bool
) -> Idempotency:
    """Check the request's key before the endpoint runs (see the module's description)."""
    key = key_of(request, required)
    if key is None:
        return Idempotency(owner, None, "", at)
    idem = Idempotency(
        owner, key, fingerprint(request.method, request.url.path, await request.body()), at
    )
    if session.get_bind().dialect.name == "postgresql":
        free = await session.scalar(
            sa.select(
                sa.func.pg_try_advisory_xact_lock(sa.func.hashtextextended(f"{owner}|{key}", 0))
            )
        )
        if not free:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed",
                code="idempotency_in_flight",
            )
    stored = await session.get(IdempotencyKey, (owner, key))
    if stored is not None:
        if stored.fingerprint != idem.fingerprint:
            raise AppError(
                "This Idempotency-Key was used for another request",
                code="idempotency_mismatch",
                status=422,
            )
        raise Replay(stored.status, stored.body)
    return idem


async def rewrite_answers(
    session: AsyncSession,
    owner: str,
    field: str,
    value: str,
    rewrite: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Change the stored answers of `owner` whose top-level `field` is `value` (a replay
    must not give back what the owner may no longer see: a refunded purchase's contact
    details); returns how many."""
    stored = list(
        await session.scalars(
            sa.select(IdempotencyKey)
            .where(IdempotencyKey.owner == owner, IdempotencyKey.body[field].as_string() == value)
            .with_for_update()
        )
    )
    for row in stored:
        row.body = rewrite(dict(row.body))
    return len(stored)


async def forget_old(session: AsyncSession, now: datetime) -> int:
    """Delete the answers stored more than KEEP_FOR ago."""
    result = await session.execute(
        sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEEP_FOR)
    )
    return int(getattr(result, "rowcount", 0) or 0)
