"""marketplace search: public points and text, text index, purchases, demand events

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect
from aiqleads.quality.masking import redact, shown_numbers

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "demand_events",
        sa.Column(
            "kind",
            sa.Enum(
                "search",
                "view",
                "cart_add",
                "purchase",
                name="demandkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("market", sa.String(length=64), nullable=True),
        sa.Column("lead_kind", sa.String(length=32), nullable=True),
        sa.Column("property_type", sa.String(length=20), nullable=True),
        sa.Column("detail", dialect.JSONType, nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand_events")),
    )
    op.create_index("ix_demand_events_lead_at", "demand_events", ["lead_id", "created_at"])
    op.create_index(
        "ix_demand_events_market_kind_at", "demand_events", ["market", "kind", "created_at"]
    )

    op.create_table(
        "purchases",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_purchases_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["buyer_id"],
            ["users.id"],
            name=op.f("fk_purchases_buyer_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_purchases_lead_id_leads"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("lead_id", "buyer_id", name=op.f("uq_purchases_lead_id_buyer_id")),
    )
    op.create_index(op.f("ix_purchases_buyer_id"), "purchases", ["buyer_id"])
    op.create_index(op.f("ix_purchases_lead_id"), "purchases", ["lead_id"])

    if dialect.is_postgres(bind):
        # The old point was exact; search now runs on the public (rounded) one.
        op.execute("ALTER TABLE leads DROP COLUMN geog")
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("public_latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("public_longitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("public_description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=True))
    _public_text(bind)
    # quality.geocode.public_point: the point rounded to two decimals.
    rounded = "round(CAST({} AS NUMERIC), 2)" if dialect.is_postgres(bind) else "round({}, 2)"
    op.execute(
        f"UPDATE leads SET public_latitude = {rounded.format('latitude')}, "
        f"public_longitude = {rounded.format('longitude')} WHERE latitude IS NOT NULL"
    )
    op.create_index("ix_leads_public_point", "leads", ["public_latitude", "public_longitude"])
    dialect.create_lead_search(bind)


def _public_text(bind: sa.Connection) -> None:
    """The redacted description and the search words of the leads stored so far."""
    leads = sa.table(
        "leads",
        *(
            sa.column(name)
            for name in (
                "id",
                "description",
                "first_name",
                "last_name",
                "street_number",
                "street_name",
                "unit_number",
                "city",
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
        ),
    )
    rows = bind.execute(sa.select(leads)).mappings().all()
    for row in rows:
        public = redact(
            row["description"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            street_number=row["street_number"],
            street_name=row["street_name"],
            unit_number=row["unit_number"],
            shown=shown_numbers(dict(row)),
        )
        bind.execute(
            sa.update(leads)
            .where(leads.c.id == row["id"])
            .values(
                public_description=public,
                search_text=dialect.search_text(row["street_name"], row["city"], public),
            )
        )


def downgrade() -> None:
    bind = op.get_bind()
    dialect.drop_lead_search(bind)
    op.drop_index("ix_leads_public_point", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("search_text")
        batch.drop_column("public_description")
        batch.drop_column("public_longitude")
        batch.drop_column("public_latitude")
    if dialect.is_postgres(bind):
        op.execute(
            "ALTER TABLE leads ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS "
            "(CASE WHEN latitude IS NULL OR longitude IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography END) STORED"
        )
        op.execute("CREATE INDEX ix_leads_geog ON leads USING GIST (geog)")
    op.drop_table("purchases")
    op.drop_table("demand_events")
