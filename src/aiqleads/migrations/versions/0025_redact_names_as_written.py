"""Descriptions shown before purchase are redacted again: names as written

`quality.masking.redact` blanked a consumer's names only capitalised ("Mcdonald") and in
capitals, so a name spelt with an inner capital ("McDonald", "DeLuca") or a lower-case
particle ("van der Berg") stayed in the masked description and in the words text search
indexes. This recomputes `public_description` and `search_text` (PostgreSQL regenerates
its tsvector; SQLite's trigger re-indexes the changed words) for every lead whose names could
be written so, with the redaction of this release.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.quality.dedup import derive_public
from aiqleads.quality.masking import spelt_with_inner_capital

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "street_number",
    "street_name",
    "unit_number",
    "city",
    "description",
    "latitude",
    "longitude",
    "beds",
    "baths",
    "living_area_sqft",
    "lot_size_sqft",
    "year_built",
    "days_on_market",
    "list_price_cents",
    "public_description",
    "search_text",
)


def _written_otherwise(name: str | None) -> bool:
    """A name the redaction before this release could miss: written neither capitalised nor in
    capitals, or with a capital inside (which the redaction now blanks in any case)."""
    name = (name or "").strip()
    return len(name) >= 2 and (
        name not in {name.title(), name.upper()} or spelt_with_inner_capital(name)
    )


BATCH = 5_000


def upgrade() -> None:
    """In id order, a batch at a time (a large store is neither read into memory at once nor
    rewritten in one statement)."""
    bind = op.get_bind()
    leads = sa.table("leads", *(sa.column(c) for c in _COLUMNS))
    after = None
    while True:
        query = (
            sa.select(*(leads.c[c] for c in _COLUMNS))
            .where(leads.c.description.is_not(None))
            .order_by(leads.c.id)
            .limit(BATCH)
        )
        if after is not None:
            query = query.where(leads.c.id > after)
        rows = bind.execute(query).mappings().all()
        if not rows:
            return
        after = rows[-1]["id"]
        changed = []
        for row in rows:
            if not (_written_otherwise(row["first_name"]) or _written_otherwise(row["last_name"])):
                continue
            values = dict(row)
            derive_public(values)
            if (values["public_description"], values["search_text"]) != (
                row["public_description"],
                row["search_text"],
            ):
                changed.append(
                    {
                        "lead": row["id"],
                        "public_description": values["public_description"],
                        "search_text": values["search_text"],
                    }
                )
        if changed:
            bind.execute(
                sa.update(leads)
                .where(leads.c.id == sa.bindparam("lead"))
                .values(
                    public_description=sa.bindparam("public_description"),
                    search_text=sa.bindparam("search_text"),
                ),
                changed,
            )


def downgrade() -> None:
    """Nothing to undo: the descriptions are redacted as they should have been."""
