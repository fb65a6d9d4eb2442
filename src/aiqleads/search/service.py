"""Marketplace search and lead pages: who may see what, and the demand each request signals."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.demand.models import DemandKind
from aiqleads.kit.dialect import bounding_box
from aiqleads.kit.errors import AppError, Invalid, NotFound
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead, LeadRow
from aiqleads.markets.catalog import MarketCatalog
from aiqleads.pricing.service import PricingService
from aiqleads.quality.geocode import PUBLIC_SHIFT_DEG
from aiqleads.runtime import Runtime
from aiqleads.search.repository import FACETS, METERS_PER_MILE, Hit, SearchRepository
from aiqleads.search.schemas import (
    AddressView,
    ConsentView,
    ContactView,
    FacetCount,
    Facets,
    LeadView,
    LocationView,
    PropertyView,
    SearchFilters,
    SearchPage,
    SearchRequest,
    SortKey,
)

# Masking: what a lead shows to someone who has not bought it


def initials(first: str | None, last: str | None) -> str | None:
    parts = [f"{name.strip()[0].upper()}." for name in (first, last) if name and name.strip()]
    return " ".join(parts) or None


def masked_street(lead: Lead | LeadRow) -> str | None:
    """The street without house number or unit ("S Las Vegas Blvd")."""
    parts = [
        lead.street_pre_direction,
        lead.street_name,
        lead.street_suffix,
        lead.street_post_direction,
    ]
    return " ".join(p for p in parts if p) or None


def present(
    lead: Lead | LeadRow,
    revealed: bool,
    distance_m: float | None = None,
    price_cents: int | None = None,
) -> LeadView:
    """The marketplace view of a lead (an entity, or a search page's row); contact details
    only when `revealed`."""
    contact = ContactView(name=initials(lead.first_name, lead.last_name))
    address = AddressView(
        street=masked_street(lead),
        city=lead.city,
        state=lead.state,
        postal_code=lead.postal_code,
    )
    location = LocationView(
        latitude=lead.public_latitude, longitude=lead.public_longitude, approximate=True
    )
    prop = PropertyView(
        type=lead.property_type,
        beds=lead.beds,
        baths=lead.baths,
        living_area_sqft=lead.living_area_sqft,
        lot_size_sqft=lead.lot_size_sqft,
        year_built=lead.year_built,
        list_price_cents=lead.list_price_cents,
        days_on_market=lead.days_on_market,
        listing_status=lead.listing_status,
    )
    consent = None
    description = lead.public_description
    if revealed:
        full_name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or None
        contact = ContactView(
            name=full_name,
            first_name=lead.first_name,
            last_name=lead.last_name,
            phone=lead.phone,
            email=lead.email,
        )
        address = AddressView(
            street=" ".join(p for p in (lead.street_number, masked_street(lead)) if p) or None,
            line1=lead.address_line1,
            line2=lead.address_line2,
            city=lead.city,
            state=lead.state,
            postal_code=lead.postal_code,
        )
        location = LocationView(latitude=lead.latitude, longitude=lead.longitude, approximate=False)
        prop = prop.model_copy(update={"parcel_number": lead.parcel_number})
        consent = ConsentView(
            captured_at=lead.consent_captured_at,
            text=lead.consent_text,
            url=lead.consent_url,
            certificate_url=lead.consent_certificate_url,
        )
        description = lead.description
    return LeadView(
        id=lead.id,
        kind=lead.kind,
        status=lead.status,
        exclusivity=lead.exclusivity,
        sales_remaining=lead.max_sales - lead.sales_count,
        market=lead.market,
        revealed=revealed,
        contact=contact,
        address=address,
        location=location,
        property=prop,
        description=description,
        price_cents=price_cents,
        quality_score=lead.quality_score,
        fraud_score=lead.fraud_score,
        has_consent=lead.consent_captured_at is not None,
        consent=consent,
        created_at=lead.created_at,
        # Rounded like the public point, so distances cannot locate the house either.
        distance_mi=round(distance_m / METERS_PER_MILE, 1) if distance_m is not None else None,
    )


# Keyset cursors: the sort they belong to, its value at the last row, the last row's id


def encode_cursor(sort: SortKey, value: Any, lead_id: uuid.UUID) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = orjson.dumps([sort.value, value, str(lead_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# The whole-number sort keys' columns: prices in 64 bits, quality in 16 (and relevance,
# which without words sorts by quality; a text rank, a count of words, fits as well).
_CURSOR_RANGE = {
    SortKey.PRICE: (-(2**63), 2**63 - 1),
    SortKey.PRICE_DESC: (-(2**63), 2**63 - 1),
    SortKey.QUALITY: (-(2**15), 2**15 - 1),
    SortKey.RELEVANCE: (-(2**15), 2**15 - 1),
}


def decode_cursor(cursor: str, sort: SortKey) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, lead_id = orjson.loads(raw)
        if cursor_sort != sort.value:
            raise ValueError("cursor of another sort order")
        if sort is SortKey.NEWEST:
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError("cursor time has no zone")
            value = value.astimezone(UTC)  # OverflowError beyond the calendar
        elif sort is SortKey.DISTANCE:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError("cursor value is not a number")
            if not math.isfinite(value):
                raise ValueError("cursor distance is not finite")
        else:  # a whole number of the sort column's width (PostgreSQL refuses any other)
            low, high = _CURSOR_RANGE[sort]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError("cursor value is out of its column's range")
        return value, uuid.UUID(lead_id)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError) as exc:
        raise AppError(
            "The cursor is not valid for this search (send the same sort it came from)",
            code="invalid_cursor",
            status=400,
        ) from exc


def source_slugs(runtime: Runtime, request: SearchRequest) -> list[str] | None:
    """The configured sources of the requested source types (None: any source)."""
    if not request.source_type:
        return None
    wanted = set(request.source_type)
    return [s.slug for s in runtime.sources.all() if s.type in wanted]


def markets_in_reach(catalog: MarketCatalog, request: SearchFilters) -> list[str]:
    """The markets whose leads the search's place can hold: its market, else every market
    whose area overlaps its radius and its box. A lead on sale has a market, assigned because
    its point lies in that market's bbox (`quality.geocode.assign_market`), and search runs on
    the public point, at most `PUBLIC_SHIFT_DEG` from it: so the bboxes, grown by that, hold
    every lead a search can match (they are grown by twice that, so that floating-point
    rounding at an edge cannot leave a lead out)."""
    if request.market:
        return [request.market]
    boxes = []
    if request.point is not None and request.radius_mi is not None:
        boxes.append(bounding_box(*request.point, request.radius_mi * METERS_PER_MILE))
    if request.bbox is not None:
        west, south, east, north = request.bbox
        boxes.append((south, north, west, east))
    markets = {m.slug for m in catalog.all()}
    for box in boxes:
        markets &= {m.slug for m in catalog.overlapping(*box, margin=2 * PUBLIC_SHIFT_DEG)}
    return sorted(markets)


class SearchService:
    """What one signed-in viewer may find and see."""

    def __init__(
        self, session: AsyncSession, runtime: Runtime, viewer: User, *, operator: bool = False
    ) -> None:
        self.runtime = runtime
        self.viewer = viewer
        self.operator = operator
        self.repo = SearchRepository(session)
        self.pricing = PricingService(session, runtime)

    async def _revealed(self, lead: Lead) -> bool:
        if self.operator:
            return True
        return bool(await self.repo.bought(self.viewer.id, [lead.id]))

    async def search(self, request: SearchRequest) -> SearchPage:
        if request.market and request.market not in self.runtime.markets:
            raise Invalid(f"No market {request.market!r}", code="unknown_market")
        after = decode_cursor(request.cursor, request.sort) if request.cursor else None
        now = self.runtime.clock.now()
        slugs = source_slugs(self.runtime, request)
        hits = await self.repo.page(
            request,
            slugs,
            now,
            after,
            request.limit + 1,
            buyer_id=self.viewer.id,
            markets=markets_in_reach(self.runtime.markets, request),
        )
        more = len(hits) > request.limit
        hits = hits[: request.limit]
        prices = await self.pricing.prices([h.lead for h in hits], self.viewer.plan)
        page = SearchPage(
            items=[
                present(h.lead, self.operator or h.bought, h.distance_m, prices.get(h.lead.id))
                for h in hits
            ],
            next_cursor=self._next(request.sort, hits[-1]) if more else None,
        )
        if request.facets:
            counts = await self.repo.facets(request, slugs, now)
            page.facets = Facets(
                **{name: [FacetCount(value=v, count=n) for v, n in counts[name]] for name in FACETS}
            )
        if after is None:  # one search, however many pages the agent reads
            self.runtime.demand.record(
                DemandKind.SEARCH,
                user_id=self.viewer.id,
                market=request.market,
                lead_kind=request.kind[0] if len(request.kind) == 1 else None,
                property_type=(
                    request.property_type[0] if len(request.property_type) == 1 else None
                ),
                detail={
                    "filters": request.model_dump(
                        mode="json",
                        exclude_defaults=True,
                        exclude={"cursor", "limit", "facets", "polygon"},
                    )
                    | ({"polygon": True} if request.polygon else {}),
                    "first_page": len(hits),
                },
            )
        return page

    @staticmethod
    def _next(sort: SortKey, last: Hit) -> str:
        value, lead_id = last.position
        return encode_cursor(sort, value, lead_id)

    async def lead(self, lead_id: uuid.UUID) -> LeadView:
        """One lead: in full to its buyers and operators, masked to other agents while it is
        on sale, and not at all otherwise (as if it did not exist)."""
        lead = await self.repo.get(lead_id)
        if lead is None:
            raise NotFound("No such lead", code="lead_not_found")
        revealed = await self._revealed(lead)
        if not revealed and lead.status is not LeadStatus.AVAILABLE:
            raise NotFound("No such lead", code="lead_not_found")
        if not self.operator:
            self.runtime.demand.record(
                DemandKind.VIEW,
                user_id=self.viewer.id,
                lead_id=lead.id,
                market=lead.market,
                lead_kind=lead.kind,
                property_type=lead.property_type,
            )
        prices = await self.pricing.prices([lead], self.viewer.plan)
        return present(lead, revealed, price_cents=prices.get(lead.id))
