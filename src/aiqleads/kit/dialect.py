"""The SQLite/PostgreSQL seam: portable column types and PostgreSQL-only DDL live here.

Domains import their column types from this module and never test the dialect themselves;
the SQLite path sits next to each PostgreSQL specific so both stay visible together.
"""

from __future__ import annotations

import enum
import math
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import shapely
import shapely.geometry
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.visitors import InternalTraversal

# JSON everywhere, JSONB (indexable, compact) on PostgreSQL.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

# SQLAlchemy's Uuid is native UUID on PostgreSQL and CHAR(32) on SQLite.
UuidType = sa.Uuid


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python, whatever the database keeps.

    SQLite has no time zones and hands back naive values; PostgreSQL uses timestamptz.
    Naive datetimes are refused on the way in, so a local time can never sneak in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def upsert(dialect_name: str, table: Any) -> Any:
    """`INSERT ... ON CONFLICT` for the dialect at hand (both speak it, with RETURNING)."""
    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


POSTGRES_EXTENSIONS = ("postgis",)


async def lock_key(session: Any, key: str) -> None:
    """Hold a lock on `key` until the transaction ends (PostgreSQL: an advisory lock, which
    conflicts with no row lock; SQLite runs one write transaction at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0)))
        )


_PLANNED_FOR_VALUES = "aiqleads_planned_for_values"


async def plan_for_values(session: Any) -> None:
    """Make PostgreSQL plan the rest of this transaction's statements for their own values.

    asyncpg prepares every statement, and after five runs PostgreSQL may keep a plan made
    without the values. A search is only fast with a plan for its own (a dense radius and a
    sparse one need different plans, and a partial search index matches only a known
    `status`), so searches ask for this: one `SET LOCAL`, once per transaction. Everything
    else keeps the default, where a statement looked up by key is planned once per
    connection instead of on every run (planning was 40 % of PostgreSQL's time in checkout,
    ADR 0007)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_PLANNED_FOR_VALUES) is transaction:
        return
    await session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    session.info[_PLANNED_FOR_VALUES] = session.get_transaction()


def is_postgres(bind: Connection) -> bool:
    return bind.dialect.name == "postgresql"


def create_extensions(bind: Connection) -> None:
    """PostgreSQL extensions the schema needs (PostGIS); SQLite needs none."""
    if is_postgres(bind):
        for name in POSTGRES_EXTENSIONS:
            bind.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))


# Tables that extensions own (PostGIS's SRID catalogue) and SQLite's full-text index with its
# shadow tables (created by migrations, unknown to the models); schema comparison skips them.
EXTENSION_TABLES = frozenset({"spatial_ref_sys"})
SQLITE_FTS_TABLE = "leads_fts"


def _unmodelled_table(name: str | None) -> bool:
    return name in EXTENSION_TABLES or bool(name and name.startswith(SQLITE_FTS_TABLE))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: leave extension-owned and PostgreSQL-computed objects out of comparison."""
    if type_ == "table":
        return not _unmodelled_table(name)
    if reflected and type_ == "column":
        return name not in PG_GENERATED_COLUMNS.get(obj.table.name, frozenset())
    if reflected and type_ == "index":
        return name not in PG_ONLY_INDEXES and name not in SEARCH_INDEXES
    return True


def str_enum(cls: type[enum.StrEnum], length: int = 16) -> sa.Enum:
    """A StrEnum stored as its value in a VARCHAR (no native enum: adding a member is data)."""
    return sa.Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


# Columns PostgreSQL computes itself (PostGIS geography); the ORM never writes them, so they
# live in migrations only and schema comparison leaves them out.
PG_GENERATED_COLUMNS = {"leads": frozenset({"geog", "search_tsv"})}
TEXT_INDEX = "ix_leads_on_sale_text"
PG_ONLY_INDEXES = frozenset({"ix_leads_geog", TEXT_INDEX})

# What text search looks at: `leads.search_text`, the street, city and public (redacted)
# description as plain words (`search_text` below, built in quality.dedup.survive).
# PostgreSQL: a generated tsvector with a GIN index, English stemming. SQLite: an FTS5 index
# over it with the Porter stemmer, kept in step by triggers. FTS5 reads the leads table itself
# (external content) and joins it by rowid; VACUUM may renumber rowids of a table without an
# INTEGER PRIMARY KEY, so after a VACUUM the index is rebuilt:
# INSERT INTO leads_fts(leads_fts) VALUES('rebuild').
TEXT_COLUMNS = ("search_text",)
TEXT_CONFIG = "english"


def create_lead_search(bind: Connection) -> None:
    """The geography point and the text index of leads, each dialect its own way."""
    if is_postgres(bind):
        bind.execute(
            sa.text(
                "ALTER TABLE leads ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS "
                "(CASE WHEN public_latitude IS NULL OR public_longitude IS NULL THEN NULL ELSE "
                "ST_SetSRID(ST_MakePoint(public_longitude, public_latitude), 4326)::geography "
                "END) STORED"
            )
        )
        bind.execute(sa.text("CREATE INDEX ix_leads_geog ON leads USING GIST (geog)"))
        document = " || ' ' || ".join(f"coalesce({c}, '')" for c in TEXT_COLUMNS)
        bind.execute(
            sa.text(
                "ALTER TABLE leads ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('{TEXT_CONFIG}', {document})) STORED"
            )
        )
        bind.execute(sa.text("CREATE INDEX ix_leads_search_tsv ON leads USING GIN (search_tsv)"))
        return
    columns = ", ".join(TEXT_COLUMNS)
    fts = SQLITE_FTS_TABLE
    bind.execute(
        sa.text(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({columns}, content='leads', "
            "content_rowid='rowid', tokenize='porter unicode61')"
        )
    )
    insert, delete = _sqlite_fts_writes()
    for statement in (
        f"CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN {insert} END",
        f"CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN {delete} END",
        _sqlite_fts_update_trigger(only_changed=True),
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ):
        bind.execute(sa.text(statement))


def _sqlite_fts_update_trigger(*, only_changed: bool) -> str:
    """The trigger that keeps FTS5 in step with an UPDATE of the words. It fires for every
    UPDATE that sets them, so with `only_changed` (since migration 0024) it re-indexes a row
    only when the words differ: ingestion rewrites a merged lead whole, mostly with the same
    words, and re-indexing them doubled the cost of the UPDATE (2,000 leads: 736 -> 389 ms)."""
    insert, delete = _sqlite_fts_writes()
    when = (
        " WHEN " + " OR ".join(f"old.{c} IS NOT new.{c}" for c in TEXT_COLUMNS)
        if only_changed
        else ""
    )
    return (
        f"CREATE TRIGGER leads_fts_update AFTER UPDATE OF {', '.join(TEXT_COLUMNS)} ON leads"
        f"{when} BEGIN {delete} {insert} END"
    )


def _sqlite_fts_writes() -> tuple[str, str]:
    """A trigger's statements that add a row's words to FTS5 (`new`) and take them out (`old`)."""
    columns = ", ".join(TEXT_COLUMNS)
    new = ", ".join(f"new.{c}" for c in TEXT_COLUMNS)
    old = ", ".join(f"old.{c}" for c in TEXT_COLUMNS)
    fts = SQLITE_FTS_TABLE
    insert = f"INSERT INTO {fts}(rowid, {columns}) VALUES (new.rowid, {new});"
    delete = f"INSERT INTO {fts}({fts}, rowid, {columns}) VALUES ('delete', old.rowid, {old});"
    return insert, delete


def replace_sqlite_fts_update_trigger(bind: Connection, *, only_changed: bool) -> None:
    """Migration 0024 (SQLite only): the FTS update trigger with or without `only_changed`."""
    if is_postgres(bind):
        return
    bind.execute(sa.text("DROP TRIGGER leads_fts_update"))
    bind.execute(sa.text(_sqlite_fts_update_trigger(only_changed=only_changed)))


def drop_lead_search(bind: Connection) -> None:
    if is_postgres(bind):
        bind.execute(sa.text("ALTER TABLE leads DROP COLUMN search_tsv"))
        bind.execute(sa.text("ALTER TABLE leads DROP COLUMN geog"))
        return
    for trigger in ("leads_fts_insert", "leads_fts_delete", "leads_fts_update"):
        bind.execute(sa.text(f"DROP TRIGGER {trigger}"))
    bind.execute(sa.text(f"DROP TABLE {SQLITE_FTS_TABLE}"))


def create_text_index(bind: Connection) -> None:
    """PostgreSQL's text index since migration 0020: GIN over (market, search_tsv) of the
    leads on sale (`btree_gin` lets a GIN index key the market). A text search names a
    market and always asks for leads on sale; over the whole table, a common word's
    263,000 entries were intersected with the market's 180,000 in a bitmap, about 40 ms of
    a 210 ms search. SQLite's FTS5 index stays as it is."""
    if not is_postgres(bind):
        return
    bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS "btree_gin"'))
    bind.execute(sa.text("DROP INDEX IF EXISTS ix_leads_search_tsv"))
    bind.execute(
        sa.text(
            f"CREATE INDEX {TEXT_INDEX} ON leads USING GIN (market, search_tsv) WHERE {ON_SALE_SQL}"
        )
    )


def drop_text_index(bind: Connection) -> None:
    """Back to migration 0007's GIN index over every lead's `search_tsv`."""
    if not is_postgres(bind):
        return
    bind.execute(sa.text(f"DROP INDEX IF EXISTS {TEXT_INDEX}"))
    bind.execute(sa.text("CREATE INDEX ix_leads_search_tsv ON leads USING GIN (search_tsv)"))


# Search indexes (migration 0007), over leads on sale only, each carrying every column a
# search filters on, so that a search checks its filters inside an index and reads the rows
# of its page only:
# - one per sort order (`SEARCH_SORT_KEYS`), led by the market since migration 0019: a dense
#   area walks its markets' part of the index of its order until it has a page (a 10-mile
#   radius with three filters over 170,000 candidates reads some thousands of entries:
#   PostgreSQL an index-only scan, SQLite a covering index);
# - one spatial (`ix_leads_on_sale_geo`): a sparse area or a selective filter starts from the
#   place (PostgreSQL: a GiST over the point and the filters, with btree_gist; SQLite: the
#   public point's latitude first). The planner picks, from the statistics.
# On 1,000,000 leads the radius search went from about 2 s to a few ms (docs/benchmarks.md);
# the price is about 0.9 GiB of indexes per million leads on PostgreSQL and five more index
# entries to write per lead. The sort keys are expressions the queries spell exactly (unknown
# prices sort last whichever way), and `status = 'available'` is written as a literal:
# SQLite matches a partial index's condition or an index expression only to the same text.
ON_SALE_SQL = "status = 'available'"
NO_PRICE_LOW, NO_PRICE_HIGH = -1, 2**62
SEARCH_SORT_KEYS = {
    "ix_leads_on_sale_price": f"coalesce(list_price_cents, {NO_PRICE_HIGH})",
    "ix_leads_on_sale_price_desc": f"coalesce(list_price_cents, {NO_PRICE_LOW})",
    "ix_leads_on_sale_newest": "created_at",
    "ix_leads_on_sale_quality": "quality_score",
}
SEARCH_GEO_INDEX = "ix_leads_on_sale_geo"
SEARCH_INDEXES = frozenset({*SEARCH_SORT_KEYS, SEARCH_GEO_INDEX})
# What search filters on (the source filter aside: rare, and it reads the row instead).
SEARCH_FILTER_COLUMNS = (
    "market",
    "kind",
    "property_type",
    "list_price_cents",
    "beds",
    "baths",
    "living_area_sqft",
    "year_built",
    "days_on_market",
    "quality_score",
    "fraud_score",
    "exclusivity",
    "created_at",
)


def create_sort_indexes(bind: Connection, lead: Sequence[str] = ()) -> None:
    """The sort indexes (`SEARCH_SORT_KEYS`), keyed by `lead` (columns), the sort expression
    and the id, carrying the point and every filtered column. Since migration 0019 they lead
    with the market: a walk reads the leads of one market in order (a merge of one walk per
    market when a search spans several), so a radius in Austin no longer reads past the
    cheapest 10,000 leads of Phoenix before it gives up."""
    first = "".join(f"{column}, " for column in lead)
    filters = ", ".join(c for c in SEARCH_FILTER_COLUMNS if c not in lead)
    for name, key in SEARCH_SORT_KEYS.items():
        if is_postgres(bind):
            # INCLUDE: carried, not sorted; with the points a radius and a box are checked too.
            columns = f"({first}{key}, id) INCLUDE (geog, public_latitude, public_longitude, "
            columns += f"{filters})"
        else:  # SQLite has no INCLUDE: trailing key columns make an index covering.
            columns = f"({first}{key}, id, public_latitude, public_longitude, {filters})"
        bind.execute(sa.text(f"CREATE INDEX {name} ON leads {columns} WHERE {ON_SALE_SQL}"))


def drop_sort_indexes(bind: Connection) -> None:
    for name in sorted(SEARCH_SORT_KEYS):
        bind.execute(sa.text(f"DROP INDEX {name}"))


def create_search_indexes(bind: Connection) -> None:
    """The search indexes as migration 0007 made them (sort indexes led by the sort key)."""
    create_sort_indexes(bind)
    filters = ", ".join(SEARCH_FILTER_COLUMNS)
    if is_postgres(bind):
        bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS "btree_gist"'))
        bind.execute(
            sa.text(
                f"CREATE INDEX {SEARCH_GEO_INDEX} ON leads USING GIST (geog, {filters}) "
                f"WHERE {ON_SALE_SQL}"
            )
        )
        return
    create_sqlite_geo_index(bind)


def create_sqlite_geo_index(bind: Connection, carried: Sequence[str] = ()) -> None:
    """SQLite's spatial search index: the public point, then every filtered column, then
    `carried`. Migration 0021 carries the id: a search near a point selects the id of each
    match, and without it SQLite read every match's row from the table to get it (8,000
    matches in an 8 km disk: 39 -> 18 ms). PostgreSQL's GiST is left as it is."""
    columns = ", ".join(["public_latitude, public_longitude", *SEARCH_FILTER_COLUMNS, *carried])
    bind.execute(
        sa.text(f"CREATE INDEX {SEARCH_GEO_INDEX} ON leads ({columns}) WHERE {ON_SALE_SQL}")
    )


# SQLite's own name for the index of the leads' primary key (the first constraint of the
# table "leads"); `IndexedBy` reads leads in id order through it.
SQLITE_LEADS_PK_INDEX = "sqlite_autoindex_leads_1"


class IndexedBy(Alias):
    """`table` read through the index `index`: `leads INDEXED BY ix` on SQLite, plain `leads`
    on PostgreSQL (whose planner needs no telling). Columns of the table itself select from it,
    as from the table."""

    # The index name is part of the cache key (an Alias's key alone would let a statement
    # compiled for one index answer for another). Without a key of its own, every statement
    # holding a walk was compiled afresh: about 3 ms of CPU per search.
    inherit_cache = False
    _traverse_internals = [*Alias._traverse_internals, ("index", InternalTraversal.dp_string)]

    def __init__(self, table: sa.Table, index: str) -> None:
        self._init(table, name=table.name)
        self.index = index

    @property
    def _hide_froms(self) -> list[Any]:
        return [self.element]

    @property
    def _from_objects(self) -> list[Any]:
        # The table too, so that a correlated subquery under this FROM (`NOT EXISTS (...
        # WHERE x.lead_id = leads.id)`) correlates to it instead of reading a `leads` of
        # its own; the enclosing select still shows only this (`_hide_froms`).
        return [self, self.element]


@compiles(IndexedBy, "sqlite")
def _indexed_by_sqlite(element: IndexedBy, compiler: Any, **kw: Any) -> str:
    return f"{compiler.preparer.format_table(element.element)} INDEXED BY {element.index}"


@compiles(IndexedBy)
def _indexed_by(element: IndexedBy, compiler: Any, **kw: Any) -> str:
    return str(compiler.preparer.format_table(element.element))


def drop_search_indexes(bind: Connection) -> None:
    for name in sorted(SEARCH_INDEXES):
        bind.execute(sa.text(f"DROP INDEX {name}"))


# Append-only tables (the ledger's entries and transactions): the database itself refuses to
# update or delete a row, whoever asks.
APPEND_ONLY_MESSAGE = "is append-only"


def create_append_only(bind: Connection, table: str) -> None:
    if is_postgres(bind):
        bind.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION aiq_refuse_change() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '% "
                + APPEND_ONLY_MESSAGE
                + "', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$"
            )
        )
        bind.execute(
            sa.text(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION aiq_refuse_change()"
            )
        )
        bind.execute(
            sa.text(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION aiq_refuse_change()"
            )
        )
        return
    for event in ("UPDATE", "DELETE"):
        bind.execute(
            sa.text(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} {APPEND_ONLY_MESSAGE}'); END"
            )
        )


def drop_append_only(bind: Connection, table: str) -> None:
    if is_postgres(bind):
        bind.execute(sa.text(f"DROP TRIGGER {table}_append_only ON {table}"))
        bind.execute(sa.text(f"DROP TRIGGER {table}_no_truncate ON {table}"))
        return
    for event in ("update", "delete"):
        bind.execute(sa.text(f"DROP TRIGGER {table}_no_{event}"))


# Run before ANALYZE on SQLite: analyse every row. A sampled analysis (`analysis_limit`, 400
# rows per index) took the 900,000 leads on sale for 401, and the planner then preferred the
# status index again.
SQLITE_FULL_ANALYSIS = "PRAGMA analysis_limit=0"


class Statistics:
    """Keeps the planner's statistics of tables a bulk load grows.

    Autovacuum analyses a growing table with a delay of a minute or more, and not at all where
    it is switched off. A first bulk load into empty tables is meanwhile planned with no
    statistics, and a key lookup (`source = ? AND source_key IN (...)`) then scans every row of
    the source instead of probing the index: on 100,000 records that took a third of the run.
    SQLite never analyses by itself, and without statistics it prefers any index whose first
    column is compared with `=`: a radius search over a million leads walked
    `status = 'available'` (900,000 rows, 3 s) instead of the spatial index (1 ms).
    So the writer counts its rows and runs ANALYZE once they reach 1,000 plus 20 % of what the
    table held at the last analysis (autovacuum's rule, counted in-process so it does not wait
    for the statistics collector). On SQLite the analysis is full (`SQLITE_FULL_ANALYSIS`),
    about 2 s for a million leads, inside the batch's write transaction."""

    def __init__(self, tables: tuple[str, ...]) -> None:
        self.tables = tables
        self.written = 0
        self.known: float | None = None  # rows of the first table at its last analysis

    async def _rows(self, session: Any) -> float:
        if session.get_bind().dialect.name == "postgresql":
            value = await session.scalar(
                sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
                {"name": self.tables[0]},
            )
            return max(float(value or 0), 0.0)  # -1: never analysed
        if not await session.scalar(
            sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ):
            return 0.0  # never analysed
        value = await session.scalar(  # each row's stat starts with the table's row count
            sa.text("SELECT max(CAST(stat AS INTEGER)) FROM sqlite_stat1 WHERE tbl = :name"),
            {"name": self.tables[0]},
        )
        return float(value or 0)

    async def wrote(self, session: Any, rows: int) -> bool:
        """Count `rows` written in `session`'s transaction; True when it analysed."""
        self.written += rows
        if self.known is None:
            self.known = await self._rows(session)
        if not self._grown():
            return False
        await self.analyse(session)
        return True

    def _grown(self) -> bool:
        """Autovacuum's rule: 1,000 rows plus 20 % of what the table held when analysed."""
        return self.written >= 1_000 + 0.2 * (self.known or 0.0)

    async def stale(self, session: Any) -> bool:
        """On SQLite, whether the first table has grown past the same threshold since its last
        analysis, counting its rows (a read): for stores that grow a few rows at a time
        (webhooks, intake, a source's small runs), where no writer counts enough to analyse.
        Always False on PostgreSQL, whose autovacuum does this."""
        if session.get_bind().dialect.name != "sqlite":
            return False
        self.known = await self._rows(session)
        rows = await session.scalar(sa.text(f'SELECT count(*) FROM "{self.tables[0]}"'))
        self.written = max(int(rows or 0) - int(self.known), 0)
        return self._grown()

    async def analyse(self, session: Any) -> None:
        """ANALYZE the tables now (in `session`'s write transaction)."""
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(sa.text(SQLITE_FULL_ANALYSIS))
        for name in self.tables:
            await session.execute(sa.text(f'ANALYZE "{name}"'))
        self.known, self.written = await self._rows(session), 0


# Search components: the same questions answered by PostGIS and full-text search on
# PostgreSQL, and by plain SQL, FTS5 and one registered function on SQLite.

# PostGIS measures geography on a sphere of the WGS 84 mean radius when asked not to use the
# spheroid; the SQLite path uses the same sphere, so both agree on who is inside a radius.
EARTH_RADIUS_M = 6_371_008.771415
METERS_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180
SQLITE_COVERS = "aiq_covers"


class _Geography(sa.types.UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geography"


# PostgreSQL's English configuration (Snowball's list) drops these words from documents and
# queries; FTS5 keeps them. Queries leave them out on both, so "homes with a pool" means the
# same everywhere. The list is PostgreSQL's own, so no real search word is thrown away.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did doing
    a an the and but if or because as until while of at by for with about against between into
    through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now""".split()
)


def search_text(*parts: str | None) -> str | None:
    """The words text search indexes: accents removed, lower case, punctuation as spaces. Both
    databases then tokenise the same plain words the same way (PostgreSQL would otherwise keep
    "2.5" or an e-mail address as one token where SQLite's FTS5 splits it)."""
    joined = " ".join(p for p in parts if p)
    if not joined:
        return None
    plain = unicodedata.normalize("NFKD", joined).encode("ascii", "ignore").decode()
    return " ".join(re.findall(r"[a-z0-9]+", plain.lower())) or None


def query_words(q: str) -> list[str]:
    """A query's words, normalised exactly like `search_text`."""
    return (search_text(q) or "").split()


def text_terms(q: str, limit: int = 12) -> list[str]:
    """The words of a free-text query, normalised like the indexed text, stop
    words left out; both engines AND the same terms, and quotes or operators are not syntax."""
    return [w for w in query_words(q) if w not in STOP_WORDS][:limit]


def param(name: str, type_: Any = None, *, expanding: bool = False) -> Any:
    """A named bound parameter: statements built once per shape refer to their values by name
    only, and each execution passes the values (see `SearchComponents`)."""
    return sa.bindparam(name, type_=type_, expanding=expanding)


def _stem(term: str) -> str:
    return term[:-1] if term.endswith("s") and len(term) > 3 else term


def _occurrences(document: Any, terms: int, length: Any) -> Any:
    """How often the terms (a plural's -s dropped; parameters `term_<i>` and their lengths
    `term_<i>_len`, see `SearchComponents.text_values`) occur in the document: a relevance that
    depends on the document alone, so the same on both engines and stable while other leads
    arrive (FTS5's bm25 is not: it weighs by the whole table).

    A row that matched the words has a document, so it needs no coalesce (which copied the
    text twice per row); the lengths are `length`'s (`SearchComponents.text_length`, with
    the words' lengths measured alike by `term_length`). Evaluated for every match
    before the page is sorted: a common word matches 50,000 leads of a market."""
    counts = []
    for i in range(terms):
        stem, size = param(f"term_{i}", sa.String), param(f"term_{i}_len", sa.Integer)
        without = sa.func.replace(document, stem, sa.literal_column("''"))
        removed = length(document, type_=sa.Integer) - length(without, type_=sa.Integer)
        counts.append(removed // size)
    return sum(counts[1:], counts[0]) if counts else sa.literal(0, sa.Integer)


def bounding_box(lat: float, lon: float, meters: float) -> tuple[float, float, float, float]:
    """(south, north, west, east) of a circle: the index prefilter of a radius query."""
    dlat = meters / METERS_PER_DEGREE_LAT
    dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


class SearchComponents(ABC):
    """Where-clauses and expressions over a point column pair and the text index, in two
    halves: `*_values` turns one search's numbers and words into named parameters (run for
    every search), and the SQL refers to those parameters by name only, so a statement is
    built once per shape and executed with each search's values (search.repository). The
    parameters are `point_lat`/`point_lon` (a search's point), `within_m` (its radius),
    `<name>_south/_north/_west/_east` (a box called `name`), `polygon` and `term_<i>`."""

    # How relevance (`_occurrences`) measures the document, and the words to match it.
    text_length: Any = sa.func.length

    @staticmethod
    def term_length(term: str) -> int:
        return len(term)

    def __init__(self, lat: Any, lon: Any, geog: Any = None) -> None:
        self.lat, self.lon = lat, lon

    def point_columns(self) -> list[Any]:
        """What the point filters read, to select from an index walk (named as the columns)."""
        return [self.lat, self.lon]

    @staticmethod
    def box_values(
        name: str, south: float, north: float, west: float, east: float
    ) -> dict[str, Any]:
        return {
            f"{name}_south": south,
            f"{name}_north": north,
            f"{name}_west": west,
            f"{name}_east": east,
        }

    def box(self, name: str) -> Any:
        """Rows whose point lies in the box `name` (`box_values`)."""
        f = sa.Float
        return sa.and_(
            self.lat.between(param(f"{name}_south", f), param(f"{name}_north", f)),
            self.lon.between(param(f"{name}_west", f), param(f"{name}_east", f)),
        )

    def has_point(self) -> Any:
        return self.lat.is_not(None)

    def point_values(self, lat: float, lon: float) -> dict[str, Any]:
        """The search's point, which `distance` and `within` measure from."""
        return {"point_lat": lat, "point_lon": lon}

    def within_values(self, lat: float, lon: float, meters: float) -> dict[str, Any]:
        """A radius around the point (with `point_values`)."""
        return {"within_m": meters}

    @abstractmethod
    def within(self) -> Any:
        """Rows whose point lies within `within_m` metres of the point."""

    @abstractmethod
    def distance(self) -> Any:
        """Metres from the point to each row's point."""

    @staticmethod
    def covers_values(polygon: str) -> dict[str, Any]:
        return {"polygon": polygon}

    @abstractmethod
    def covers(self) -> Any:
        """Rows whose point lies inside or on the GeoJSON `polygon`."""

    def text_values(self, terms: list[str]) -> dict[str, Any]:
        """The words of a search (`text_terms`), for `text`."""
        values: dict[str, Any] = {}
        for i, term in enumerate(terms):
            stem = _stem(term)
            values[f"term_{i}"], values[f"term_{i}_len"] = stem, self.term_length(stem)
        return values

    @abstractmethod
    def text(self, query: Any, terms: int) -> tuple[Any, Any]:
        """`query` restricted to rows matching every one of the `terms` words, and an
        expression ranking them (higher is better)."""


class PostgresSearch(SearchComponents):
    tsv: Any = sa.literal_column("leads.search_tsv")

    def __init__(self, lat: Any, lon: Any, geog: Any = None) -> None:
        super().__init__(lat, lon)
        self.geog = geog if geog is not None else sa.literal_column("leads.geog", _Geography())

    def point_columns(self) -> list[Any]:
        return [self.geog.label("geog"), self.lat, self.lon]

    @staticmethod
    def _point() -> Any:
        lon, lat = param("point_lon", sa.Float), param("point_lat", sa.Float)
        return sa.cast(sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326), _Geography())

    def has_point(self) -> Any:
        return self.geog.is_not(None)

    def within(self) -> Any:
        # ST_DWithin(geog, point, meters, false) spelled as the two halves it expands to: the
        # GiST box test and the exact test on the sphere. Written whole, PostGIS estimates
        # the box's selectivity twice (a 10-mile radius over 170,000 leads was planned as 90
        # rows), and the planner then sorts every candidate instead of walking a sort index.
        point, meters = self._point(), param("within_m", sa.Float)
        return sa.and_(
            self.geog.bool_op("&&")(sa.func._ST_Expand(point, meters)),
            sa.func._ST_DWithin(self.geog, point, meters, False),
        )

    def distance(self) -> Any:
        # Distance on the sphere; as an ORDER BY it walks the GiST index nearest first.
        return self.geog.op("<->", return_type=sa.Float)(self._point())

    def covers(self) -> Any:
        # Planar on longitude/latitude, as the SQLite path (shapely) and a map draw it.
        shape = sa.func.ST_SetSRID(sa.func.ST_GeomFromGeoJSON(param("polygon", sa.String)), 4326)
        return sa.func.ST_Covers(
            shape, sa.func.ST_SetSRID(sa.func.ST_MakePoint(self.lon, self.lat), 4326)
        )

    # Bytes: PostgreSQL knows a text's without reading it, where `length` counts characters.
    text_length = sa.func.octet_length

    @staticmethod
    def term_length(term: str) -> int:
        return len(term.encode())

    def text_values(self, terms: list[str]) -> dict[str, Any]:
        return super().text_values(terms) | {"words": " ".join(terms)}

    def text(self, query: Any, terms: int) -> tuple[Any, Any]:
        tsquery = sa.func.plainto_tsquery(
            sa.literal_column(f"'{TEXT_CONFIG}'::regconfig"), param("words", sa.String)
        )
        ranked = _occurrences(sa.literal_column("leads.search_text"), terms, self.text_length)
        return query.where(self.tsv.bool_op("@@")(tsquery)), ranked


class SqliteSearch(SearchComponents):
    def point_values(self, lat: float, lon: float) -> dict[str, Any]:
        return super().point_values(lat, lon) | {"point_cos_lat": math.cos(math.radians(lat))}

    def within_values(self, lat: float, lon: float, meters: float) -> dict[str, Any]:
        box = self.box_values("within", *bounding_box(lat, lon, meters))
        return super().within_values(lat, lon, meters) | box

    def _haversine(self) -> Any:
        f = sa.func
        lat, lon = param("point_lat", sa.Float), param("point_lon", sa.Float)
        dlat = f.radians(self.lat - lat) / 2
        dlon = f.radians(self.lon - lon) / 2
        a = f.pow(f.sin(dlat), 2) + param("point_cos_lat", sa.Float) * f.cos(
            f.radians(self.lat)
        ) * f.pow(f.sin(dlon), 2)
        return 2 * EARTH_RADIUS_M * f.asin(f.min(1.0, f.sqrt(a)))

    def within(self) -> Any:
        return sa.and_(self.box("within"), self._haversine() <= param("within_m", sa.Float))

    def distance(self) -> Any:
        return self._haversine()

    def covers(self) -> Any:
        return sa.func.aiq_covers(param("polygon", sa.String), self.lon, self.lat) == 1

    def text_values(self, terms: list[str]) -> dict[str, Any]:
        return super().text_values(terms) | {"match": " AND ".join(f'"{t}"' for t in terms)}

    def text(self, query: Any, terms: int) -> tuple[Any, Any]:
        hits: Any = (
            sa.select(sa.literal_column("rowid"))
            .select_from(sa.table(SQLITE_FTS_TABLE))
            .where(sa.literal_column(SQLITE_FTS_TABLE).op("MATCH")(param("match", sa.String)))
        )
        query = query.where(sa.literal_column("leads.rowid").in_(hits))
        return query, _occurrences(sa.literal_column("leads.search_text"), terms, self.text_length)


@lru_cache(maxsize=64)
def _prepared(polygon: str) -> Any:
    shape = shapely.geometry.shape(orjson.loads(polygon))
    shapely.prepare(shape)
    return shape


def sqlite_covers(polygon: str, lon: float | None, lat: float | None) -> int:
    """SQLite's `aiq_covers(polygon, lon, lat)`: 1 when the point is inside or on the polygon
    (for a point, intersecting the polygon is being covered by it, as ST_Covers answers)."""
    if lon is None or lat is None:
        return 0
    return int(shapely.intersects_xy(_prepared(polygon), lon, lat))


def search_components(dialect_name: str, lat: Any, lon: Any, geog: Any = None) -> SearchComponents:
    cls = PostgresSearch if dialect_name == "postgresql" else SqliteSearch
    return cls(lat, lon, geog)
