"""The dialect seam's own SQL constructs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from aiqleads.kit.dialect import IndexedBy
from aiqleads.leads.models import Lead

LEADS: sa.Table = Lead.__table__  # type: ignore[assignment]


def _walk(index: str, price: int) -> sa.Select[tuple[object]]:
    return (
        sa.select(LEADS.c.id)
        .select_from(IndexedBy(LEADS, index))
        .where(LEADS.c.list_price_cents >= price)
    )


def test_a_walk_through_an_index_is_compiled_once_and_kept_apart_per_index() -> None:
    """A statement that reads leads through a named index goes into SQLAlchemy's compiled
    cache (it was compiled afresh for every search: about 3 ms of CPU each), under a key that
    holds the index, so a statement compiled for one index never answers for another."""
    key = _walk("ix_leads_on_sale_price", 100)._generate_cache_key()
    assert key is not None
    assert key == _walk("ix_leads_on_sale_price", 200)._generate_cache_key()  # values bound
    assert key != _walk("ix_leads_on_sale_newest", 100)._generate_cache_key()
    sql = str(_walk("ix_leads_on_sale_newest", 1).compile(dialect=sqlite.dialect()))
    assert "FROM leads INDEXED BY ix_leads_on_sale_newest" in sql
    sql = str(_walk("ix_leads_on_sale_newest", 1).compile(dialect=PGDialect_asyncpg()))  # type: ignore[no-untyped-call]
    assert "FROM leads " in sql
    assert "INDEXED" not in sql
