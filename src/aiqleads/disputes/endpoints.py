"""Buyers dispute purchased leads; operators decide the disputes evidence did not settle."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from aiqleads.accounts.deps import AdminUser, Idempotent, LeadBuyer, LeadReader, LeadViewer
from aiqleads.disputes.models import Dispute, DisputeStatus
from aiqleads.disputes.repository import DisputeRepository
from aiqleads.disputes.schemas import (
    DecisionIn,
    DisputeIn,
    DisputeOut,
    SourceRecordOut,
)
from aiqleads.disputes.service import DisputeService
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/disputes", tags=["disputes"])
admin = APIRouter(prefix="/admin/disputes", tags=["admin: disputes"])

Limit = Annotated[int, Query(ge=1, le=100)]


def _page(rows: list[Dispute], limit: int) -> Page[DisputeOut]:
    return page_of(rows, limit, DisputeOut.model_validate, lambda d: (d.created_at, d.id))


@router.post("", response_model=DisputeOut, status_code=status.HTTP_201_CREATED)
async def file_dispute(
    body: DisputeIn, buyer: LeadBuyer, session: SessionDep, runtime: RuntimeDep, idem: Idempotent
) -> DisputeOut:
    """Dispute a lead you bought (within the dispute window): wrong number, disconnected, not
    the owner, duplicate, fake or no consent. Evidence is checked at once; a clear case is
    refunded on the spot, others go to an operator."""
    dispute = await DisputeService(session, runtime).file(
        buyer, body.purchase_id, body.reason, body.note
    )
    out = DisputeOut.model_validate(dispute)
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out


@router.get("", response_model=Page[DisputeOut])
async def my_disputes(
    buyer: LeadReader, session: SessionDep, cursor: str | None = None, limit: Limit = 50
) -> Page[DisputeOut]:
    """Your disputes, newest first."""
    rows = await DisputeRepository(session).page(
        buyer_id=buyer.id,
        status=None,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    return _page(rows, limit)


@router.get("/{dispute_id}", response_model=DisputeOut)
async def one_dispute(
    dispute_id: uuid.UUID, viewer: LeadViewer, session: SessionDep, runtime: RuntimeDep
) -> DisputeOut:
    dispute = await DisputeService(session, runtime).mine(viewer.user, dispute_id, viewer.operator)
    return DisputeOut.model_validate(dispute)


@admin.get("", response_model=Page[DisputeOut])
async def review_queue(
    operator: AdminUser,
    session: SessionDep,
    status: DisputeStatus | None = DisputeStatus.OPEN,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[DisputeOut]:
    """Disputes to decide, oldest first (`status` picks others)."""
    rows = await DisputeRepository(session).page(
        buyer_id=None,
        status=status,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
        oldest_first=True,
    )
    return _page(rows, limit)


@admin.get("/sources", response_model=list[SourceRecordOut])
async def sources(operator: AdminUser, session: SessionDep) -> list[SourceRecordOut]:
    """How each source's leads fare once sold: sales, disputes, refunds."""
    return [
        SourceRecordOut(
            source=r.source,
            sold=r.sold,
            disputed=r.disputed,
            refunded=r.refunded,
            refund_rate=round(r.refunded / r.sold, 4) if r.sold else 0.0,
        )
        for r in await DisputeRepository(session).by_source()
    ]


@admin.post("/{dispute_id}/decision", response_model=DisputeOut)
async def decide(
    dispute_id: uuid.UUID,
    body: DecisionIn,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: Idempotent,
) -> DisputeOut:
    """Approve (refund what was paid, withdraw the lead) or reject an open dispute; the buyer
    is told either way (audited)."""
    dispute = await DisputeService(session, runtime).decide(
        dispute_id, body.decision == "approve", body.reason, operator
    )
    out = DisputeOut.model_validate(dispute)
    await idem.complete(session, status.HTTP_200_OK, out)
    return out
