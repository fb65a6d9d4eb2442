from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aiqleads.accounts.deps import AdminUser
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of
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
    return page_of(rows, limit, EmailOut.model_validate, lambda r: (r.created_at, r.id))
