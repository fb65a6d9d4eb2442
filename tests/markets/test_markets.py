"""Markets are data: the four launch markets ship, and a new one needs only the file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from aiqleads.markets.catalog import load_markets


async def test_launch_markets_are_served(client: httpx.AsyncClient) -> None:
    items = (await client.get("/api/v1/markets")).json()["items"]
    assert [m["slug"] for m in items] == ["las-vegas", "dallas-fort-worth", "austin", "phoenix"]
    phoenix = items[3]
    assert phoenix["time_zone"] == "America/Phoenix"
    assert phoenix["states"] == ["AZ"]
    min_lon, min_lat, max_lon, max_lat = phoenix["bbox"]
    assert min_lon < phoenix["center"]["lon"] < max_lon
    assert min_lat < phoenix["center"]["lat"] < max_lat


def _write(tmp_path: Path, markets: list[dict[str, object]]) -> Path:
    path = tmp_path / "markets.json"
    path.write_text(json.dumps({"markets": markets}))
    return path


def denver(**change: object) -> dict[str, object]:
    """A market that is not shipped, as an operator would add it."""
    return {
        "slug": "denver",
        "name": "Denver",
        "states": ["CO"],
        "time_zone": "America/Denver",
        "center": {"lat": 39.7392, "lon": -104.9903},
        "bbox": [-105.3, 39.5, -104.6, 40.0],
        **change,
    }


def test_a_new_market_is_configuration_not_code(tmp_path: Path) -> None:
    shipped = [m.model_dump() for m in load_markets().all()]
    catalog = load_markets(_write(tmp_path, [*shipped, denver()]))
    assert len(catalog.all()) == 5
    assert "denver" in catalog
    assert catalog.get("denver").time_zone == "America/Denver"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_zone": "Mars/Base"}, "unknown time zone"),
        ({"center": {"lat": 10, "lon": 10}}, "center must lie inside bbox"),
        ({"bbox": [1, 1, 0, 0]}, "bbox must be"),
        ({"states": ["Texas"]}, "pattern"),
    ],
)
def test_a_broken_markets_file_is_refused_with_a_reason(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        load_markets(_write(tmp_path, [denver(**change)]))
