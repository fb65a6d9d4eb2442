"""Lead sources are data: a JSON file lists each source, its market, schedule and trust.

Credentials are never in the file: a source names the environment variables that hold them,
and they are read as `SecretStr` so they cannot end up in a log line or a repr.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# Sources where a consumer opts in directly (the form shows the consent text).
CONSENT_SOURCE_TYPES = frozenset({"webform", "facebook", "linkedin"})
# Sources we fetch from (over HTTP, on a schedule); the others push records to us.
PULL_SOURCE_TYPES = frozenset({"reso", "listing_page"})

SourceType = Literal["reso", "csv", "listing_page", "facebook", "linkedin", "webform", "demo"]


class SourceConfig(BaseModel):
    """One configured source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)
    name: str = Field(min_length=1, max_length=120)
    type: SourceType
    market: str | None = Field(
        default=None, description="Market slug; None for sources that span markets"
    )
    enabled: bool = True
    schedule_seconds: int | None = Field(default=None, ge=60)
    # How much we believe this source when two disagree (survivorship), 0..1.
    trust: float = Field(default=0.5, ge=0, le=1)
    default_kind: str = "seller"
    # Per-type settings: base_url, mapping file, form field maps, CSS selectors ...
    options: dict[str, Any] = Field(default_factory=dict)
    # credential name -> environment variable holding it, e.g. {"client_secret": "MLS_SECRET"}
    credentials: dict[str, str] = Field(default_factory=dict)

    @property
    def consent_required(self) -> bool:
        """Consumers opt in directly here, so a lead without a consent record is suspect."""
        return self.type in CONSENT_SOURCE_TYPES or bool(self.options.get("consent_required"))

    def credential(self, name: str) -> SecretStr | None:
        """The named credential from the environment, or None when unset."""
        var = self.credentials.get(name)
        value = os.environ.get(var) if var else None
        return SecretStr(value) if value else None


class SourceFile(BaseModel):
    sources: list[SourceConfig]


class SourceCatalog:
    """The configured sources by slug."""

    def __init__(self, sources: list[SourceConfig]) -> None:
        slugs = [s.slug for s in sources]
        if len(set(slugs)) != len(slugs):
            raise ValueError("source slugs must be unique")
        self._by_slug = {s.slug: s for s in sources}

    def all(self) -> list[SourceConfig]:
        return list(self._by_slug.values())

    def get(self, slug: str) -> SourceConfig | None:
        return self._by_slug.get(slug)


def load_sources(path: Path | None = None) -> SourceCatalog:
    """Read the sources file (`AIQLEADS_SOURCES_FILE`, else the one shipped in the package)."""
    if path is None:
        text = resources.files("aiqleads.ingest").joinpath("data/sources.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return SourceCatalog(SourceFile.model_validate(json.loads(text)).sources)
