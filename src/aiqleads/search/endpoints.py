"""Agents' marketplace endpoints: search (GET with a query string, POST with a polygon) and a
lead's page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from aiqleads.accounts.deps import LeadReader, LeadViewer
from aiqleads.kit.deps import RuntimeDep, SessionDep, read_only
from aiqleads.search.saved import SavedSearchService
from aiqleads.search.schemas import (
    LeadView,
    SavedSearchIn,
    SavedSearchOut,
    SavedSearchPatch,
    SearchPage,
    SearchPaging,
    SearchQuery,
    SearchRequest,
)
from aiqleads.search.service import SearchService

router = APIRouter(prefix="/leads", tags=["marketplace"])


@router.get("/search", response_model=SearchPage)
async def search_leads(
    query: Annotated[SearchQuery, Query()],
    viewer: LeadViewer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> SearchPage:
    """Available leads by market, radius or bounding box, filters and words; contact details
    are masked unless you bought the lead. Page with `next_cursor`."""
    request = SearchRequest.model_validate(query.model_dump())
    service = SearchService(session, runtime, viewer.user, operator=viewer.operator)
    return await service.search(request)


@router.post("/search", response_model=SearchPage)
@read_only
async def search_leads_in_shape(
    body: SearchRequest, viewer: LeadViewer, session: SessionDep, runtime: RuntimeDep
) -> SearchPage:
    """The same search with a JSON body, which may also carry a GeoJSON `polygon`."""
    service = SearchService(session, runtime, viewer.user, operator=viewer.operator)
    return await service.search(body)


@router.get("/{lead_id}", response_model=LeadView)
async def lead_page(
    lead_id: uuid.UUID, viewer: LeadViewer, session: SessionDep, runtime: RuntimeDep
) -> LeadView:
    """One lead: in full if you bought it, masked while it is on sale, 404 otherwise."""
    service = SearchService(session, runtime, viewer.user, operator=viewer.operator)
    return await service.lead(lead_id)


saved = APIRouter(prefix="/saved-searches", tags=["saved searches"])


@saved.get("", response_model=list[SavedSearchOut])
async def list_saved(viewer: LeadReader, session: SessionDep, runtime: RuntimeDep) -> Any:
    return await SavedSearchService(session, runtime, viewer).list()


@saved.post("", response_model=SavedSearchOut, status_code=status.HTTP_201_CREATED)
async def save_search(
    body: SavedSearchIn, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> Any:
    """Keep these filters; with `notify`, new matching leads are announced in the app and by
    e-mail, as your notification preferences say."""
    return await SavedSearchService(session, runtime, viewer).create(body)


@saved.get("/{search_id}", response_model=SavedSearchOut)
async def get_saved(
    search_id: uuid.UUID, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> Any:
    return await SavedSearchService(session, runtime, viewer).get(search_id)


@saved.patch("/{search_id}", response_model=SavedSearchOut)
async def update_saved(
    search_id: uuid.UUID,
    body: SavedSearchPatch,
    viewer: LeadReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Any:
    return await SavedSearchService(session, runtime, viewer).update(search_id, body)


@saved.delete("/{search_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_saved(
    search_id: uuid.UUID, viewer: LeadReader, session: SessionDep, runtime: RuntimeDep
) -> None:
    await SavedSearchService(session, runtime, viewer).delete(search_id)


@saved.get("/{search_id}/results", response_model=SearchPage)
async def saved_results(
    search_id: uuid.UUID,
    paging: Annotated[SearchPaging, Query()],
    viewer: LeadViewer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> SearchPage:
    """The saved search run now (sort, cursor, limit and facets from the query string)."""
    return await SavedSearchService(session, runtime, viewer.user).results(
        search_id, paging, operator=viewer.operator
    )
