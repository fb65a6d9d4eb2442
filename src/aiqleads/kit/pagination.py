"""Opaque keyset cursors: stable pages even while new rows arrive."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from aiqleads.kit.errors import AppError

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("cursor time has no zone")
        # In UTC here, where a time beyond the calendar ("0001-01-01T00:00+14:00") is an
        # OverflowError, rather than in the database driver (a 500).
        return created_at.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise AppError("The cursor is not valid", code="invalid_cursor", status=400) from exc


def page_of(
    rows: Sequence[R],
    limit: int,
    item: Callable[[R], T],
    position: Callable[[R], tuple[datetime, uuid.UUID]],
) -> Page[T]:
    """A page from `limit + 1` fetched rows: the extra row only says whether there is more."""
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(
        items=[item(row) for row in rows[:limit]],
        next_cursor=encode_cursor(*position(last)) if last is not None else None,
    )
