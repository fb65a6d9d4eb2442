"""leads and ingestion

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aiqleads.kit import dialect

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "ingestion_runs",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running", "succeeded", "failed", name="runstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("started_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("finished_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("counts", dialect.JSONType, nullable=False),
        sa.Column("quarantined_by_reason", dialect.JSONType, nullable=False),
        sa.Column("errors", dialect.JSONType, nullable=False),
        sa.Column("replay_of", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["replay_of"],
            ["ingestion_runs.id"],
            name=op.f("fk_ingestion_runs_replay_of_ingestion_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_runs")),
    )
    op.create_index(op.f("ix_ingestion_runs_source"), "ingestion_runs", ["source"], unique=False)
    op.create_index(
        op.f("ix_ingestion_runs_started_at"), "ingestion_runs", ["started_at"], unique=False
    )

    op.create_table(
        "leads",
        sa.Column(
            "status",
            sa.Enum(
                "quarantined",
                "available",
                "held",
                "sold",
                "withdrawn",
                "expired",
                name="leadstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("status_changed_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "exclusivity",
            sa.Enum("exclusive", "shared", name="exclusivity", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("max_sales", sa.Integer(), nullable=False),
        sa.Column("sales_count", sa.Integer(), nullable=False),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("first_name", sa.String(length=60), nullable=True),
        sa.Column("last_name", sa.String(length=60), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("phone_type", sa.String(length=24), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("street_number", sa.String(length=20), nullable=True),
        sa.Column("street_pre_direction", sa.String(length=12), nullable=True),
        sa.Column("street_name", sa.String(length=100), nullable=True),
        sa.Column("street_suffix", sa.String(length=40), nullable=True),
        sa.Column("street_post_direction", sa.String(length=12), nullable=True),
        sa.Column("unit_type", sa.String(length=20), nullable=True),
        sa.Column("unit_number", sa.String(length=20), nullable=True),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=60), nullable=True),
        sa.Column("city", sa.String(length=80), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("postal_code", sa.String(length=5), nullable=True),
        sa.Column("zip4", sa.String(length=4), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("geocode_precision", sa.String(length=10), nullable=True),
        sa.Column("h3_r7", sa.String(length=16), nullable=True),
        sa.Column("h3_r9", sa.String(length=16), nullable=True),
        sa.Column("market", sa.String(length=64), nullable=True),
        sa.Column("property_type", sa.String(length=20), nullable=True),
        sa.Column("beds", sa.SmallInteger(), nullable=True),
        sa.Column("baths", sa.Float(), nullable=True),
        sa.Column("living_area_sqft", sa.Integer(), nullable=True),
        sa.Column("lot_size_sqft", sa.Integer(), nullable=True),
        sa.Column("year_built", sa.SmallInteger(), nullable=True),
        sa.Column("list_price_cents", sa.BigInteger(), nullable=True),
        sa.Column("days_on_market", sa.Integer(), nullable=True),
        sa.Column("parcel_number", sa.String(length=40), nullable=True),
        sa.Column("listing_status", sa.String(length=30), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("consent_captured_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("consent_url", sa.String(length=2000), nullable=True),
        sa.Column("consent_ip", sa.String(length=45), nullable=True),
        sa.Column("consent_user_agent", sa.String(length=500), nullable=True),
        sa.Column("consent_certificate_url", sa.String(length=2000), nullable=True),
        sa.Column("quality_score", sa.SmallInteger(), nullable=False),
        sa.Column("fraud_score", sa.Float(), nullable=False),
        sa.Column("fraud_reasons", dialect.JSONType, nullable=False),
        sa.Column("fraud_model_version", sa.Integer(), nullable=True),
        sa.Column("problems", dialect.JSONType, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("source_count", sa.Integer(), nullable=False),
        sa.Column("provenance", dialect.JSONType, nullable=False),
        sa.Column("attributes", dialect.JSONType, nullable=False),
        sa.Column("source_updated_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("updated_at", dialect.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "fraud_score >= 0 AND fraud_score <= 1", name=op.f("ck_leads_fraud_score_range")
        ),
        sa.CheckConstraint("max_sales >= 1", name=op.f("ck_leads_max_sales_positive")),
        sa.CheckConstraint(
            "quality_score >= 0 AND quality_score <= 100", name=op.f("ck_leads_quality_score_range")
        ),
        sa.CheckConstraint(
            "sales_count >= 0 AND sales_count <= max_sales", name=op.f("ck_leads_sales_bounded")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["leads.id"],
            name=op.f("fk_leads_merged_into_id_leads"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
    )
    op.create_index(op.f("ix_leads_h3_r7"), "leads", ["h3_r7"], unique=False)
    op.create_index("ix_leads_lat_lon", "leads", ["latitude", "longitude"], unique=False)
    op.create_index("ix_leads_market_status", "leads", ["market", "status"], unique=False)
    op.create_index(op.f("ix_leads_postal_code"), "leads", ["postal_code"], unique=False)
    op.create_index(op.f("ix_leads_status"), "leads", ["status"], unique=False)
    if dialect.is_postgres(bind):
        # PostGIS point computed from latitude/longitude, so every writer stays portable.
        op.execute(
            "ALTER TABLE leads ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS "
            "(CASE WHEN latitude IS NULL OR longitude IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography END) STORED"
        )
        op.execute("CREATE INDEX ix_leads_geog ON leads USING GIST (geog)")

    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trained_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("features", dialect.JSONType, nullable=False),
        sa.Column("parameters", dialect.JSONType, nullable=False),
        sa.Column("metrics", dialect.JSONType, nullable=False),
        sa.Column("training_rows", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_table(
        "source_states",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("high_water_mark", dialect.UTCDateTime(), nullable=True),
        sa.Column("validators", dialect.JSONType, nullable=False),
        sa.Column("updated_at", dialect.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_states")),
    )
    op.create_table(
        "lead_match_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_lead_match_keys_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "lead_id", name=op.f("pk_lead_match_keys")),
    )
    op.create_index(
        op.f("ix_lead_match_keys_lead_id"), "lead_match_keys", ["lead_id"], unique=False
    )

    op.create_table(
        "lead_reviews",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("features", dialect.JSONType, nullable=False),
        sa.Column("fraud_score", sa.Float(), nullable=False),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_lead_reviews_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
            name=op.f("fk_lead_reviews_reviewer_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_reviews")),
    )
    op.create_index(op.f("ix_lead_reviews_lead_id"), "lead_reviews", ["lead_id"], unique=False)

    op.create_table(
        "possible_duplicates",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("other_lead_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", dialect.JSONType, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "merged", "dismissed", name="matchstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("created_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("decided_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_possible_duplicates_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_possible_duplicates_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["other_lead_id"],
            ["leads.id"],
            name=op.f("fk_possible_duplicates_other_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_possible_duplicates")),
        sa.UniqueConstraint(
            "lead_id", "other_lead_id", name=op.f("uq_possible_duplicates_lead_id_other_lead_id")
        ),
    )
    op.create_index(
        op.f("ix_possible_duplicates_lead_id"), "possible_duplicates", ["lead_id"], unique=False
    )
    op.create_index(
        op.f("ix_possible_duplicates_other_lead_id"),
        "possible_duplicates",
        ["other_lead_id"],
        unique=False,
    )

    op.create_table(
        "source_records",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", dialect.JSONType, nullable=False),
        sa.Column("fields", dialect.JSONType, nullable=True),
        sa.Column("problems", dialect.JSONType, nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "accepted",
                "merged",
                "updated",
                "unchanged",
                "quarantined",
                "failed",
                name="outcome",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("trust", sa.Float(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", dialect.UTCDateTime(), nullable=False),
        sa.Column("source_updated_at", dialect.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_source_records_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ingestion_runs.id"],
            name=op.f("fk_source_records_run_id_ingestion_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_records")),
        sa.UniqueConstraint(
            "source",
            "source_key",
            "content_hash",
            name=op.f("uq_source_records_source_source_key_content_hash"),
        ),
    )
    op.create_index(op.f("ix_source_records_lead_id"), "source_records", ["lead_id"], unique=False)
    op.create_index(op.f("ix_source_records_run_id"), "source_records", ["run_id"], unique=False)
    op.create_index(
        "ix_source_records_source_key", "source_records", ["source", "source_key"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_source_records_source_key", table_name="source_records")
    op.drop_index(op.f("ix_source_records_run_id"), table_name="source_records")
    op.drop_index(op.f("ix_source_records_lead_id"), table_name="source_records")

    op.drop_table("source_records")
    op.drop_index(op.f("ix_possible_duplicates_other_lead_id"), table_name="possible_duplicates")
    op.drop_index(op.f("ix_possible_duplicates_lead_id"), table_name="possible_duplicates")

    op.drop_table("possible_duplicates")
    op.drop_index(op.f("ix_lead_reviews_lead_id"), table_name="lead_reviews")

    op.drop_table("lead_reviews")
    op.drop_index(op.f("ix_lead_match_keys_lead_id"), table_name="lead_match_keys")

    op.drop_table("lead_match_keys")
    op.drop_table("source_states")
    op.drop_table("model_versions")
    op.drop_index(op.f("ix_leads_status"), table_name="leads")
    op.drop_index(op.f("ix_leads_postal_code"), table_name="leads")
    op.drop_index("ix_leads_market_status", table_name="leads")
    op.drop_index("ix_leads_lat_lon", table_name="leads")
    op.drop_index(op.f("ix_leads_h3_r7"), table_name="leads")

    op.drop_table("leads")
    op.drop_index(op.f("ix_ingestion_runs_started_at"), table_name="ingestion_runs")
    op.drop_index(op.f("ix_ingestion_runs_source"), table_name="ingestion_runs")

    op.drop_table("ingestion_runs")
