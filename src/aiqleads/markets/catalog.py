"""Markets are data: loaded from a JSON file, so adding a market needs no code."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class Point(BaseModel):
    model_config = ConfigDict(frozen=True)
    lat: Latitude
    lon: Longitude


# Leads scoring above this wait for review, in a market that sets no threshold of its own and
# outside every market.
DEFAULT_FRAUD_THRESHOLD = 0.7


class Market(BaseModel):
    """One launch market: where it is and how its local time runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)
    name: str = Field(min_length=1, max_length=120)
    states: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = Field(min_length=1)
    time_zone: str
    center: Point
    bbox: tuple[Longitude, Latitude, Longitude, Latitude]
    typical_list_price_cents: int = Field(
        default=40_000_000, gt=0, description="Median home list price; fraud and pricing anchor"
    )
    fraud_threshold: float = Field(
        default=DEFAULT_FRAUD_THRESHOLD,
        gt=0,
        le=1,
        description="Leads scoring above this wait for review",
    )
    boundary: dict[str, Any] | None = Field(
        default=None,
        description="Optional GeoJSON Polygon/MultiPolygon; the bbox is used without it",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _bbox_holds_center(self) -> Market:
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if not (min_lon < max_lon and min_lat < max_lat):
            raise ValueError("bbox must be [min_lon, min_lat, max_lon, max_lat]")
        if not (min_lon <= self.center.lon <= max_lon and min_lat <= self.center.lat <= max_lat):
            raise ValueError("center must lie inside bbox")
        if self.boundary is not None and self.boundary.get("type") not in {
            "Polygon",
            "MultiPolygon",
        }:
            raise ValueError("boundary must be a GeoJSON Polygon or MultiPolygon")
        return self


class MarketFile(BaseModel):
    markets: list[Market] = Field(min_length=1)


class MarketCatalog:
    """The configured markets, by slug, in file order."""

    def __init__(self, markets: list[Market]) -> None:
        slugs = [m.slug for m in markets]
        if len(set(slugs)) != len(slugs):
            raise ValueError("market slugs must be unique")
        self._by_slug = {m.slug: m for m in markets}

    def all(self) -> list[Market]:
        return list(self._by_slug.values())

    def overlapping(
        self, south: float, north: float, west: float, east: float, margin: float = 0.0
    ) -> list[Market]:
        """The markets whose bbox, grown by `margin` degrees on every side, overlaps the box."""
        return [
            m
            for m in self._by_slug.values()
            if m.bbox[0] - margin <= east
            and west <= m.bbox[2] + margin
            and m.bbox[1] - margin <= north
            and south <= m.bbox[3] + margin
        ]

    def get(self, slug: str) -> Market | None:
        return self._by_slug.get(slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug


def load_markets(path: Path | None = None) -> MarketCatalog:
    """Read the markets file (`AIQLEADS_MARKETS_FILE`, else the one shipped in the package)."""
    if path is None:
        text = resources.files("aiqleads.markets").joinpath("data/markets.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return MarketCatalog(MarketFile.model_validate(json.loads(text)).markets)
