"""Agents' marketplace endpoints: search (GET with a query string, POST with a polygon) and a
lead's page."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from aiqleads.accounts.deps import LeadReader
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.search.schemas import LeadView, SearchPage, SearchQuery, SearchRequest
from aiqleads.search.service import SearchService

router = APIRouter(prefix="/leads", tags=["marketplace"])


@router.get("/search", response_model=SearchPage)
async def search_leads(
    query: Annotated[SearchQuery, Query()],
    viewer: LeadReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> SearchPage:
    """Available leads by market, radius or bounding box, filters and words; contact details
    are masked unless you bought the lead. Page with `next_cursor`."""
    request = SearchRequest.model_validate(query.model_dump())
    return await SearchService(session, runtime, viewer).search(request)


@router.post("/search", response_model=SearchPage)
async def search_leads_in_shape(
    body: SearchRequest, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> SearchPage:
    """The same search with a JSON body, which may also carry a GeoJSON `polygon`."""
    return await SearchService(session, runtime, viewer).search(body)


@router.get("/{lead_id}", response_model=LeadView)
async def lead_page(
    lead_id: uuid.UUID, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> LeadView:
    """One lead: in full if you bought it, masked while it is on sale, 404 otherwise."""
    return await SearchService(session, runtime, viewer).lead(lead_id)
