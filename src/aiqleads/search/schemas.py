"""Search requests and the marketplace's view of a lead (masked until bought)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import shapely.geometry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiqleads.ingest.sources import SourceType
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import LEAD_KINDS, Exclusivity
from aiqleads.quality.normalise import MAX_PRICE_DOLLARS

MAX_POLYGON_POINTS = 1_000
MAX_RADIUS_MI = 100.0
MAX_PAGE = 100


class SortKey(enum.StrEnum):
    RELEVANCE = "relevance"  # text rank with `q`; otherwise quality
    PRICE = "price"  # list price, low to high (unknown prices last)
    PRICE_DESC = "price_desc"
    NEWEST = "newest"
    DISTANCE = "distance"  # needs lat/lon
    QUALITY = "quality"


class GeoJsonPolygon(BaseModel):
    """A GeoJSON Polygon in longitude/latitude; its edges are straight on the map."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^Polygon$")
    coordinates: list[list[tuple[float, float]]] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _valid_shape(self) -> Self:
        points = sum(len(ring) for ring in self.coordinates)
        if points > MAX_POLYGON_POINTS:
            raise ValueError(f"the polygon has {points} points; at most {MAX_POLYGON_POINTS}")
        for ring in self.coordinates:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise ValueError(
                    "each ring needs at least 4 positions, the last equal to the first"
                )
            for lon, lat in ring:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError("positions are [longitude, latitude] in degrees")
        shape = shapely.geometry.shape(self.model_dump())
        if not shape.is_valid:
            raise ValueError("the polygon crosses itself")
        return self

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north)."""
        lons = [lon for ring in self.coordinates for lon, _ in ring]
        lats = [lat for ring in self.coordinates for _, lat in ring]
        return min(lons), min(lats), max(lons), max(lats)


# Ceilings of the numeric filters, inside their columns' widths (a larger number was a 500
# from the driver, and a saved search holding one failed the alert job's batch): no home
# costs more than ingestion accepts, nor is larger or longer on the market than these.
MAX_PRICE_CENTS = MAX_PRICE_DOLLARS * 100
MAX_AREA_SQFT = 10_000_000
MAX_DAYS_ON_MARKET = 100_000


class _Where(BaseModel):
    """Filters a GET query string can carry."""

    model_config = ConfigDict(extra="forbid")

    market: str | None = Field(default=None, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_mi: float | None = Field(default=None, gt=0, le=MAX_RADIUS_MI)
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="west,south,east,north in degrees"
    )
    kind: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=10)
    property_type: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=10
    )
    min_price_cents: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)
    max_price_cents: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)
    min_beds: int | None = Field(default=None, ge=0, le=50)
    min_baths: float | None = Field(default=None, ge=0, le=50)
    min_living_area_sqft: int | None = Field(default=None, ge=0, le=MAX_AREA_SQFT)
    max_living_area_sqft: int | None = Field(default=None, ge=0, le=MAX_AREA_SQFT)
    min_year_built: int | None = Field(default=None, ge=1600, le=2200)
    max_year_built: int | None = Field(default=None, ge=1600, le=2200)
    max_days_on_market: int | None = Field(default=None, ge=0, le=MAX_DAYS_ON_MARKET)
    min_quality: int | None = Field(default=None, ge=0, le=100)
    max_fraud: float | None = Field(default=None, ge=0, le=1)
    exclusivity: Exclusivity | None = None
    fresh_within_days: int | None = Field(
        default=None, ge=1, le=3650, description="Ingested within this many days"
    )
    source_type: list[SourceType] = Field(default_factory=list, max_length=10)
    q: str | None = Field(
        default=None, max_length=200, description="Words to find in description, street, city"
    )

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(value.split(","))
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return tuple(value[0].split(","))
        return value

    @field_validator("kind")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LEAD_KINDS))
        if unknown:
            raise ValueError(f"unknown lead kind {unknown[0]!r}; one of {', '.join(LEAD_KINDS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        if self.radius_mi is not None and self.lat is None:
            raise ValueError("radius_mi needs lat and lon")
        if self.bbox is not None:
            west, south, east, north = self.bbox
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise ValueError("bbox is west,south,east,north with west < east, south < north")
        for low, high in (
            ("min_price_cents", "max_price_cents"),
            ("min_living_area_sqft", "max_living_area_sqft"),
            ("min_year_built", "max_year_built"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} is above {high}")
        return self

    @property
    def point(self) -> tuple[float, float] | None:
        return (self.lat, self.lon) if self.lat is not None and self.lon is not None else None


class SearchFilters(_Where):
    """What a search (or a saved search) asks for; a polygon needs the POST form."""

    polygon: GeoJsonPolygon | None = None


class SearchPaging(BaseModel):
    """Sort and page of a search."""

    model_config = ConfigDict(extra="forbid")

    sort: SortKey = SortKey.RELEVANCE
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    facets: bool = Field(default=False, description="Also count matches by kind, type, price")


def _sortable(request: SearchPaging, point: tuple[float, float] | None) -> None:
    if request.sort is SortKey.DISTANCE and point is None:
        raise ValueError("sort=distance needs lat and lon")


class SearchQuery(SearchPaging, _Where):
    """`GET /leads/search` query parameters."""

    @model_validator(mode="after")
    def _distance_needs_point(self) -> Self:
        _sortable(self, self.point)
        return self


class SearchRequest(SearchPaging, SearchFilters):
    """`POST /leads/search` body."""

    @model_validator(mode="after")
    def _distance_needs_point(self) -> Self:
        _sortable(self, self.point)
        return self


# What an agent sees


class ContactView(BaseModel):
    name: str | None = Field(description='Initials ("J. S.") until bought')
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None


class AddressView(BaseModel):
    street: str | None = Field(description="Street without house number or unit until bought")
    line1: str | None = None
    line2: str | None = None
    city: str | None
    state: str | None
    postal_code: str | None


class LocationView(BaseModel):
    latitude: float | None
    longitude: float | None
    approximate: bool = Field(description="Rounded to about 1 km until bought")


class PropertyView(BaseModel):
    type: str | None
    beds: int | None
    baths: float | None
    living_area_sqft: int | None
    lot_size_sqft: int | None
    year_built: int | None
    list_price_cents: int | None
    days_on_market: int | None
    listing_status: str | None
    parcel_number: str | None = None


class ConsentView(BaseModel):
    captured_at: datetime | None
    text: str | None
    url: str | None
    certificate_url: str | None


class LeadView(BaseModel):
    """A lead as the marketplace shows it: contact details only to its buyers and operators."""

    id: uuid.UUID
    kind: str
    status: LeadStatus
    exclusivity: Exclusivity
    sales_remaining: int
    market: str | None
    revealed: bool = Field(description="True when you bought this lead (or are an operator)")
    contact: ContactView
    address: AddressView
    location: LocationView
    property: PropertyView
    description: str | None
    price_cents: int | None = Field(
        default=None,
        description="What the lead costs you (your plan's discount included); "
        "GET /leads/{id}/price explains it. None when it is not on sale.",
    )
    quality_score: int
    fraud_score: float
    has_consent: bool
    consent: ConsentView | None = None
    created_at: datetime
    distance_mi: float | None = None


class FacetCount(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    kind: list[FacetCount]
    property_type: list[FacetCount]
    price_band: list[FacetCount]
    market: list[FacetCount]


class SearchPage(BaseModel):
    items: list[LeadView]
    next_cursor: str | None = None
    facets: Facets | None = None


# Text without control characters (C0, DEL, C1) or the Unicode line and paragraph separators.
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"


class SavedSearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No control characters or line separators: the name becomes an e-mail subject line.
    name: str = Field(min_length=1, max_length=100, pattern=ONE_LINE)
    filters: SearchFilters
    notify: bool = Field(default=True, description="Tell me when new leads match")


class SavedSearchPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=ONE_LINE)
    filters: SearchFilters | None = None
    notify: bool | None = None


class SavedSearchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    filters: SearchFilters
    notify: bool
    checked_at: datetime
    created_at: datetime
    updated_at: datetime
