from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from aiqleads.accounts.deps import AdminUser
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.mail import service
from aiqleads.mail.schemas import EmailOut, RetriedOut

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


@router.post("/retry-failed", response_model=RetriedOut)
async def retry_failed(session: SessionDep, runtime: RuntimeDep, admin: AdminUser) -> RetriedOut:
    """Send every failed message again (the oldest 1,000 per call), as after an SMTP outage
    that outlasted the retries."""
    return RetriedOut(retried=await service.retry_failed(session, runtime, admin.id, None))


@router.post("/{email_id}/retry", response_model=RetriedOut)
async def retry_one(
    email_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, admin: AdminUser
) -> RetriedOut:
    """Send one failed message again; `404 email_not_failed` if it is not failed."""
    return RetriedOut(retried=await service.retry_failed(session, runtime, admin.id, email_id))
