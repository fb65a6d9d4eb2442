"""Offline geocoding from the US ZIP gazetteer that ships in the `zipcodes` package.

Source coordinates are kept when they are plausible (inside the US and near the ZIP's
centroid); otherwise the ZIP centroid, else the city centroid, is used and the precision
says which. H3 cells at two resolutions index the point for maps and blocking.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import h3
from zipcodes import _zipcodes

from aiqleads.markets.catalog import Market, MarketCatalog
from aiqleads.quality.problems import Problem, error, warning

H3_COARSE = 7  # ~5 km² hexagons: heatmaps and demand
H3_FINE = 9  # ~0.1 km² hexagons: neighbourhood search and blocking
# A source point further than this from its ZIP centroid is distrusted.
MAX_ZIP_DISTANCE_KM = 40.0
# Decimal places of the public point: 0.01 degree is about 1.1 km north-south (0.9 km east-west
# at 36 degrees north).
PUBLIC_DECIMALS = 2
# How far, in degrees on each axis, the public point may lie from the lead's own (rounding).
PUBLIC_SHIFT_DEG = 0.5 * 10**-PUBLIC_DECIMALS


class Place(NamedTuple):
    # A tuple of plain values: the cyclic garbage collector stops tracking it, so the ~67,000
    # places of the gazetteer do not slow every full collection of a long ingestion run.
    lat: float
    lon: float
    city: str
    state: str
    other_cities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Gazetteer:
    zips: dict[str, Place]
    cities: dict[tuple[str, str], Place]

    def zip(self, code: str | None) -> Place | None:
        return self.zips.get(code) if code else None

    def city(self, name: str | None, state: str | None) -> Place | None:
        if not name or not state:
            return None
        return self.cities.get((name.upper(), state.upper()))


@cache
def gazetteer() -> Gazetteer:
    """ZIP and city centroids, built once per process (~0.7 s) from the packaged data."""
    zips: dict[str, Place] = {}
    by_city: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    # The compiled module's fresh list, not `zipcodes.list_all()`, which keeps its copy (about
    # 250,000 objects) alive for the life of the process.
    for row in _zipcodes.list_all():
        if not row.get("lat") or not row.get("long"):
            continue
        lat, lon = float(row["lat"]), float(row["long"])
        city, state = str(row["city"]).upper(), str(row["state"]).upper()
        others = tuple(str(c).upper() for c in row.get("acceptable_cities") or [])
        zips[row["zip_code"]] = Place(lat, lon, city, state, others)
        if row.get("zip_code_type") == "STANDARD":
            by_city[(city, state)].append((lat, lon))
    cities = {
        key: Place(
            sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts), key[0], key[1]
        )
        for key, pts in by_city.items()
    }
    return Gazetteer(zips, cities)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    rlat1, rlat2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = rlat2 - rlat1, math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(rlat1) * math.cos(rlat2) * math.sin(dlon / 2) ** 2
    return 6371.0088 * 2 * math.asin(math.sqrt(a))


@dataclass(frozen=True, slots=True)
class Geocode:
    lat: float
    lon: float
    precision: str  # "source", "zip", "city"
    h3_coarse: str
    h3_fine: str


def _located(lat: float, lon: float, precision: str) -> Geocode:
    return Geocode(
        round(lat, 6),
        round(lon, 6),
        precision,
        h3.latlng_to_cell(lat, lon, H3_COARSE),
        h3.latlng_to_cell(lat, lon, H3_FINE),
    )


def _plausible_us(lat: float, lon: float) -> bool:
    # Continental US, Alaska and Hawaii, coarsely; (0, 0) and swapped pairs fail this.
    return 18.0 <= lat <= 72.0 and -180.0 <= lon <= -65.0


def check_place(postal_code: str | None, city: str | None, state: str | None) -> list[Problem]:
    """ZIP, city and state must agree with each other (per the gazetteer)."""
    place = gazetteer().zip(postal_code)
    if postal_code and place is None:
        return [warning("postal_code_unknown", f"ZIP {postal_code} does not exist", "postal_code")]
    if place is None:
        return []
    problems = []
    if state and state != place.state:
        problems.append(
            error(
                "zip_state_mismatch",
                f"ZIP {postal_code} is in {place.state}, not {state}",
                "state",
            )
        )
    if city and city.upper() != place.city and city.upper() not in place.other_cities:
        problems.append(
            warning("zip_city_mismatch", f"ZIP {postal_code} is {place.city}, not {city}", "city")
        )
    return problems


def geocode(
    lat: float | None,
    lon: float | None,
    postal_code: str | None,
    city: str | None,
    state: str | None,
) -> tuple[Geocode | None, list[Problem]]:
    """The best point we can stand behind, and how precise it is."""
    problems: list[Problem] = []
    place = gazetteer().zip(postal_code)
    if lat is not None and lon is not None:
        if not _plausible_us(lat, lon):
            problems.append(
                warning("coordinates_invalid", f"({lat}, {lon}) is not in the US", "latitude")
            )
        elif place and haversine_km(lat, lon, place.lat, place.lon) > MAX_ZIP_DISTANCE_KM:
            problems.append(
                warning(
                    "coordinates_far_from_zip",
                    f"({lat}, {lon}) is far from ZIP {postal_code}",
                    "latitude",
                )
            )
        else:
            return _located(lat, lon, "source"), problems
    if place is not None:
        return _located(place.lat, place.lon, "zip"), problems
    city_place = gazetteer().city(city, state)
    if city_place is not None:
        return _located(city_place.lat, city_place.lon, "city"), problems
    problems.append(error("not_geocodable", "no usable coordinates, ZIP or city", "postal_code"))
    return None, problems


def _inside(market: Market, lat: float, lon: float) -> bool:
    min_lon, min_lat, max_lon, max_lat = market.bbox
    return min_lon <= lon <= max_lon and min_lat <= lat <= max_lat


def assign_market(
    catalog: MarketCatalog, lat: float, lon: float, state: str | None
) -> Market | None:
    """The market whose area holds the point (and whose states include the lead's state)."""
    for market in catalog.all():
        if _inside(market, lat, lon) and (state is None or state in market.states):
            return market
    return None


def public_point(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    """Where a lead is shown, and searched, before it is bought: its point rounded to ~1 km.

    Geographic search runs on this point rather than the exact one, so a radius query answers
    only what the rounded map shows: shrinking circles around chosen centres cannot trilaterate
    a house that the masked listing hides.
    """
    if lat is None or lon is None:
        return None, None
    return round(lat, PUBLIC_DECIMALS), round(lon, PUBLIC_DECIMALS)
