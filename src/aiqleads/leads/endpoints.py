"""Operators' lead endpoints: full detail, the review queue, merge, unmerge and dismissing
possible duplicates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from aiqleads.accounts.deps import AdminUser
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.leads.repository import LeadRepository
from aiqleads.leads.schemas import LeadAdminOut, MergeIn, ReviewIn, ReviewItem, UnmergeIn
from aiqleads.leads.service import LeadAdminService

router = APIRouter(prefix="/admin", tags=["admin: leads"])


@router.get("/leads/{lead_id}", response_model=LeadAdminOut)
async def lead_detail(
    lead_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> LeadAdminOut:
    """A lead with every field's provenance, its problems and fraud reasons, and the raw
    payload of every source record behind it."""
    return await LeadAdminService(session, runtime).detail(lead_id)


@router.get("/review-queue", response_model=Page[ReviewItem])
async def review_queue(
    admin: AdminUser,
    session: SessionDep,
    market: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[ReviewItem]:
    """Quarantined leads waiting for a decision, oldest first."""
    after = decode_cursor(cursor) if cursor else None
    rows = await LeadRepository(session).review_queue(market=market, after=after, limit=limit + 1)
    return page_of(rows, limit, ReviewItem.model_validate, lambda r: (r.created_at, r.id))


@router.post("/leads/{lead_id}/review", response_model=LeadAdminOut)
async def review_lead(
    lead_id: uuid.UUID, body: ReviewIn, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> LeadAdminOut:
    """Approve (the lead goes on sale) or reject (withdrawn); the decision trains the model."""
    service = LeadAdminService(session, runtime)
    await service.review(lead_id, body.decision, body.reason, admin)
    return await service.detail(lead_id)


@router.post("/leads/{lead_id}/merge", response_model=LeadAdminOut)
async def merge_leads(
    lead_id: uuid.UUID, body: MergeIn, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> LeadAdminOut:
    """Fold another lead into this one (both were the same person and property)."""
    service = LeadAdminService(session, runtime)
    await service.merge(lead_id, body.other_lead_id, admin)
    return await service.detail(lead_id)


@router.post("/leads/{lead_id}/dismiss-duplicate", response_model=LeadAdminOut)
async def dismiss_duplicate(
    lead_id: uuid.UUID, body: MergeIn, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> LeadAdminOut:
    """The two leads flagged as possible duplicates are different people: close the flag."""
    service = LeadAdminService(session, runtime)
    await service.dismiss_duplicate(lead_id, body.other_lead_id, admin)
    return await service.detail(lead_id)


@router.post("/leads/{lead_id}/unmerge", response_model=LeadAdminOut)
async def unmerge_lead(
    lead_id: uuid.UUID, body: UnmergeIn, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> LeadAdminOut:
    """Split one source record off into a lead of its own; returns the new lead."""
    service = LeadAdminService(session, runtime)
    split = await service.unmerge(lead_id, body.record_id, admin)
    return await service.detail(split.id)
