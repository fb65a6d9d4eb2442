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


def test_a_subquery_under_a_walk_correlates_to_the_leads_it_reads() -> None:
    """`NOT EXISTS (... WHERE hit.lead_id = leads.id)` under a FROM read through an index
    refers to those leads; it must not read a `leads` table of its own (which made a saved
    search's "not announced yet" condition true of no lead or of every lead)."""
    hits = sa.table("saved_search_hits", sa.column("lead_id"))
    query = (
        sa.select(LEADS.c.id)
        .select_from(IndexedBy(LEADS, "ix_leads_market_status"))
        .where(~sa.exists().where(hits.c.lead_id == LEADS.c.id))
    )
    sql = " ".join(str(query.compile(dialect=sqlite.dialect())).split())
    assert "FROM leads INDEXED BY ix_leads_market_status WHERE NOT" in sql
    assert "FROM saved_search_hits WHERE" in sql  # the subquery reads only the hits
