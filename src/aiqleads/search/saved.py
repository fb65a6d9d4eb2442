"""Saved searches: kept per agent, and checked on a schedule for leads that went on sale since
the last check; the agent is told (in the app, by e-mail, as they prefer)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.kit.errors import Conflict, Invalid, NotFound
from aiqleads.notifications.service import notify
from aiqleads.runtime import Runtime
from aiqleads.search.models import SavedSearch
from aiqleads.search.repository import SearchRepository
from aiqleads.search.schemas import (
    SavedSearchIn,
    SavedSearchPatch,
    SearchFilters,
    SearchPage,
    SearchPaging,
    SearchRequest,
)
from aiqleads.search.service import SearchService, present, source_slugs

log = structlog.get_logger(__name__)

MAX_SAVED = 25
ALERT_EXAMPLES = 3
ALERT_COUNT_CAP = 100  # "100+ new leads": counting further is no news to anyone
# Each check looks this far behind the last one: a batch stamped before the last check but
# committed after it (or stamped by a worker whose clock lags) is still found; leads already
# announced are remembered per saved search (saved_search_hits), so none is announced twice.
ALERT_OVERLAP = timedelta(minutes=10)


class SavedSearchService:
    def __init__(self, session: AsyncSession, runtime: Runtime, user: User) -> None:
        self.session = session
        self.runtime = runtime
        self.user = user

    def _check(self, filters: SearchFilters) -> None:
        if filters.market and filters.market not in self.runtime.markets:
            raise Invalid(f"No market {filters.market!r}", code="unknown_market")

    async def list(self) -> list[SavedSearch]:
        return list(
            await self.session.scalars(
                sa.select(SavedSearch)
                .where(SavedSearch.user_id == self.user.id)
                .order_by(SavedSearch.created_at, SavedSearch.id)
            )
        )

    async def get(self, search_id: uuid.UUID) -> SavedSearch:
        saved = await self.session.get(SavedSearch, search_id)
        # Another agent's saved search does not exist, as far as this one can tell.
        if saved is None or saved.user_id != self.user.id:
            raise NotFound("No such saved search", code="saved_search_not_found")
        return saved

    async def create(self, body: SavedSearchIn) -> SavedSearch:
        self._check(body.filters)
        count = await self.session.scalar(
            sa.select(sa.func.count()).where(SavedSearch.user_id == self.user.id)
        )
        if (count or 0) >= MAX_SAVED:
            raise Conflict(
                f"You have {MAX_SAVED} saved searches; delete one first",
                code="too_many_saved_searches",
            )
        now = self.runtime.clock.now()
        saved = SavedSearch(
            user_id=self.user.id,
            name=body.name,
            filters=body.filters.model_dump(mode="json", exclude_defaults=True),
            notify=body.notify,
            checked_at=now,
            created_at=now,
            updated_at=now,
        )
        self.session.add(saved)
        await self.session.flush()
        return saved

    async def update(self, search_id: uuid.UUID, patch: SavedSearchPatch) -> SavedSearch:
        saved = await self.get(search_id)
        now = self.runtime.clock.now()
        if patch.filters is not None:
            self._check(patch.filters)
            saved.filters = patch.filters.model_dump(mode="json", exclude_defaults=True)
            saved.checked_at = now  # new filters announce leads from now on, as a new search
        if patch.name is not None:
            saved.name = patch.name
        if patch.notify is not None:
            if patch.notify and not saved.notify:
                # Alerts back on: what arrived while they were off is not news now (the
                # results show it), or the first alert would name up to 100 old leads.
                saved.checked_at = now
            saved.notify = patch.notify
        saved.updated_at = now
        await self.session.flush()
        return saved

    async def delete(self, search_id: uuid.UUID) -> None:
        await self.session.delete(await self.get(search_id))

    async def results(
        self, search_id: uuid.UUID, paging: SearchPaging, *, operator: bool
    ) -> SearchPage:
        """The saved search run now, with the caller's sort and page."""
        kept = await self.get(search_id)
        try:
            request = SearchRequest.model_validate(kept.filters | paging.model_dump())
        except ValidationError as exc:  # e.g. sort=distance on a search without a point
            raise Invalid(
                "This sort does not fit the saved search: "
                + "; ".join(e["msg"] for e in exc.errors()),
                code="invalid_sort",
            ) from exc
        search = SearchService(self.session, self.runtime, self.user, operator=operator)
        return await search.search(request)


def _money(cents: int | None) -> str:
    return f"${cents / 100:,.0f}" if cents is not None else "price unknown"


async def alert(
    session: AsyncSession, runtime: Runtime, saved: SavedSearch, user: User, since: datetime
) -> int:
    """Tell the agent about leads that went on sale since `since` (the last check); returns
    how many."""
    now = runtime.clock.now()
    request = SearchRequest.model_validate(saved.filters | {"sort": "newest"})
    repo = SearchRepository(session)
    hits = await repo.page(
        request,
        source_slugs(runtime, request),
        now,
        None,
        ALERT_COUNT_CAP + 1,
        on_sale_since=since - ALERT_OVERLAP,
        unannounced_for=saved.id,
    )
    if not hits:
        return 0
    await repo.announced(saved.id, [h.lead.id for h in hits], now)
    count = len(hits)
    shown = f"{ALERT_COUNT_CAP}+" if count > ALERT_COUNT_CAP else str(count)
    lines = []
    for hit in hits[:ALERT_EXAMPLES]:
        view = present(hit.lead, revealed=False)
        place = ", ".join(p for p in (view.address.street, view.address.city) if p)
        beds = f"{view.property.beds} bd" if view.property.beds is not None else ""
        lines.append(
            f"- {view.kind.replace('_', ' ')} lead, {place} {beds}, "
            f"{_money(view.property.list_price_cents)} (lead {view.id})"
        )
    title = f'{shown} new lead{"s" if count != 1 else ""} match "{saved.name}"'
    body = "\n".join(
        [
            title + ".",
            "",
            *lines,
            "",
            f"See them all: GET /api/v1/saved-searches/{saved.id}/results",
        ]
    )
    await notify(
        session,
        runtime,
        user,
        topic="new_matching_leads",
        kind="saved_search_alert",
        title=title,
        body=body,
        data={
            "saved_search_id": str(saved.id),
            "count": count,
            "lead_ids": [str(h.lead.id) for h in hits[:ALERT_EXAMPLES]],
        },
    )
    return count


async def check_saved_searches(runtime: Runtime, now: datetime, batch: int = 200) -> int:
    """Check every saved search with alerts on (each batch its own transaction); returns how
    many agents were told about new leads."""
    told = 0
    after: uuid.UUID | None = None
    while True:
        async with runtime.transaction() as session:
            query = (
                sa.select(SavedSearch, User)
                .join(User, User.id == SavedSearch.user_id)
                .where(SavedSearch.notify.is_(True), SavedSearch.checked_at < now)
                .order_by(SavedSearch.id)
                .limit(batch)
                # PostgreSQL: a second checker skips these rows instead of alerting twice.
                .with_for_update(of=SavedSearch, skip_locked=True)
            )
            if after is not None:
                query = query.where(SavedSearch.id > after)
            rows = (await session.execute(query)).all()
            if not rows:
                return told
            after = rows[-1][0].id
            for saved, user in rows:
                # Checked whatever comes of it, so a broken search is not tried on every run;
                # set before the savepoint, whose rollback would expire the row.
                since, saved.checked_at = saved.checked_at, now
                saved_id = saved.id
                try:
                    # A savepoint each: one search the database refuses must not undo or stop
                    # the alerts of every other agent in the batch.
                    async with session.begin_nested():
                        found = await alert(session, runtime, saved, user, since)
                except (ValidationError, sa.exc.SQLAlchemyError, OverflowError) as exc:
                    # Saved under filters we no longer accept, or refused by the database.
                    log.warning("saved_search_failed", saved_search=str(saved_id), error=repr(exc))
                    continue
                told += bool(found)
