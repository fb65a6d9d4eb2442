from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aiqleads.accounts.deps import AdminUser
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, encode_cursor
from aiqleads.mail import service
from aiqleads.mail.schemas import EmailOut

router = APIRouter(prefix="/admin/emails", tags=["admin"])


@router.get("", response_model=Page[EmailOut])
async def list_emails(
    session: SessionDep,
    runtime: RuntimeDep,
    _admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> Page[EmailOut]:
    """The e-mail outbox, newest first, with bodies and delivery state."""
    before = decode_cursor(cursor) if cursor else None
    rows = await service.list_emails(session, runtime, limit + 1, before)
    items = [EmailOut.model_validate(r) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return Page[EmailOut](items=items, next_cursor=next_cursor)
