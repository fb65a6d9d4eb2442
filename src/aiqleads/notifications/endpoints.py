"""A user's in-app notifications."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from aiqleads.accounts.deps import AccountReader, AccountWriter
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.notifications import service

router = APIRouter(prefix="/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class MarkedRead(BaseModel):
    marked: int


@router.get("", response_model=Page[NotificationOut])
async def list_notifications(
    user: AccountReader,
    session: SessionDep,
    unread: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[NotificationOut]:
    """Newest first; `unread=true` for the unread ones only."""
    after = decode_cursor(cursor) if cursor else None
    rows = await service.inbox(session, user.id, unread=unread, after=after, limit=limit + 1)
    return page_of(rows, limit, NotificationOut.model_validate, lambda r: (r.created_at, r.id))


@router.post("/read-all", response_model=MarkedRead)
async def read_all(user: AccountWriter, session: SessionDep, runtime: RuntimeDep) -> MarkedRead:
    marked = await service.mark_read(session, user.id, runtime.clock.now(), None)
    return MarkedRead(marked=marked)


@router.post("/{notification_id}/read", response_model=MarkedRead)
async def read_one(
    notification_id: uuid.UUID, user: AccountWriter, session: SessionDep, runtime: RuntimeDep
) -> MarkedRead:
    marked = await service.mark_read(session, user.id, runtime.clock.now(), notification_id)
    return MarkedRead(marked=marked)
