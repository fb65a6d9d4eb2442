"""The lead: one golden record per person-and-property, built from its source records."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, Timestamped, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum
from aiqleads.leads.lifecycle import LeadStatus

# Kinds are data, not an enum: a new kind needs a name and its required fields (quality.validate).
LEAD_KINDS = ("seller", "buyer", "fsbo", "expired_listing", "solar_homeowner")


class Exclusivity(enum.StrEnum):
    EXCLUSIVE = "exclusive"  # sold to one buyer only
    SHARED = "shared"  # sold up to `max_sales` times


class Lead(UuidPk, Timestamped, Base):
    """The golden record buyers see; every field's origin is in `provenance`."""

    __tablename__ = "leads"
    __table_args__ = (
        sa.Index("ix_leads_market_status", "market", "status"),
        # Saved-search alerts: what went on sale since the last check.
        sa.Index("ix_leads_status_changed", "status", "status_changed_at"),
        # The fraud signal "many leads from one IP within the hour", counted for every batch.
        sa.Index(
            "ix_leads_consent_ip",
            "consent_ip",
            "created_at",
            sqlite_where=sa.text("consent_ip IS NOT NULL"),
            postgresql_where=sa.text("consent_ip IS NOT NULL"),
        ),
        sa.CheckConstraint("max_sales >= 1", name="max_sales_positive"),
        sa.CheckConstraint("sales_count >= 0 AND sales_count <= max_sales", name="sales_bounded"),
        sa.CheckConstraint("fraud_score >= 0 AND fraud_score <= 1", name="fraud_score_range"),
        sa.CheckConstraint(
            "quality_score >= 0 AND quality_score <= 100", name="quality_score_range"
        ),
    )

    status: Mapped[LeadStatus] = mapped_column(str_enum(LeadStatus), nullable=False)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    exclusivity: Mapped[Exclusivity] = mapped_column(str_enum(Exclusivity), nullable=False)
    max_sales: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    sales_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="SET NULL")
    )

    # Contact
    first_name: Mapped[str | None] = mapped_column(sa.String(60))
    last_name: Mapped[str | None] = mapped_column(sa.String(60))
    phone: Mapped[str | None] = mapped_column(sa.String(16))  # E.164
    phone_type: Mapped[str | None] = mapped_column(sa.String(24))
    email: Mapped[str | None] = mapped_column(sa.String(320))

    # Address, USPS Pub. 28 parts and lines
    street_number: Mapped[str | None] = mapped_column(sa.String(20))
    street_pre_direction: Mapped[str | None] = mapped_column(sa.String(12))
    street_name: Mapped[str | None] = mapped_column(sa.String(100))
    street_suffix: Mapped[str | None] = mapped_column(sa.String(40))
    street_post_direction: Mapped[str | None] = mapped_column(sa.String(12))
    unit_type: Mapped[str | None] = mapped_column(sa.String(20))
    unit_number: Mapped[str | None] = mapped_column(sa.String(20))
    address_line1: Mapped[str | None] = mapped_column(sa.String(200))
    address_line2: Mapped[str | None] = mapped_column(sa.String(60))
    city: Mapped[str | None] = mapped_column(sa.String(80))
    state: Mapped[str | None] = mapped_column(sa.String(2))
    postal_code: Mapped[str | None] = mapped_column(sa.String(5))
    zip4: Mapped[str | None] = mapped_column(sa.String(4))
    address: Mapped[str | None] = mapped_column(sa.String(300))

    # Location. The public point is the exact one rounded to ~1 km (quality.geocode.public_point):
    # what anyone who has not bought the lead sees, and what geographic search runs on. On
    # PostgreSQL a PostGIS geography column `geog` is computed from it (kit.dialect).
    latitude: Mapped[float | None] = mapped_column(sa.Float)
    longitude: Mapped[float | None] = mapped_column(sa.Float)
    public_latitude: Mapped[float | None] = mapped_column(sa.Float)
    public_longitude: Mapped[float | None] = mapped_column(sa.Float)
    geocode_precision: Mapped[str | None] = mapped_column(sa.String(10))
    h3_r7: Mapped[str | None] = mapped_column(sa.String(16))
    h3_r9: Mapped[str | None] = mapped_column(sa.String(16))
    market: Mapped[str | None] = mapped_column(sa.String(64))

    # Property facts
    property_type: Mapped[str | None] = mapped_column(sa.String(20))
    beds: Mapped[int | None] = mapped_column(sa.SmallInteger)
    baths: Mapped[float | None] = mapped_column(sa.Float)
    living_area_sqft: Mapped[int | None] = mapped_column(sa.Integer)
    lot_size_sqft: Mapped[int | None] = mapped_column(sa.Integer)
    year_built: Mapped[int | None] = mapped_column(sa.SmallInteger)
    list_price_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    days_on_market: Mapped[int | None] = mapped_column(sa.Integer)
    parcel_number: Mapped[str | None] = mapped_column(sa.String(40))
    listing_status: Mapped[str | None] = mapped_column(sa.String(30))
    description: Mapped[str | None] = mapped_column(sa.Text)
    # The description with contact details blanked (quality.masking), shown before purchase,
    # and the words text search indexes (street, city, public description).
    public_description: Mapped[str | None] = mapped_column(sa.Text)
    search_text: Mapped[str | None] = mapped_column(sa.Text)

    # Consent (TCPA): what the consumer agreed to, where and when
    consent_captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_text: Mapped[str | None] = mapped_column(sa.Text)
    consent_url: Mapped[str | None] = mapped_column(sa.String(2000))
    consent_ip: Mapped[str | None] = mapped_column(sa.String(45))
    consent_user_agent: Mapped[str | None] = mapped_column(sa.String(500))
    consent_certificate_url: Mapped[str | None] = mapped_column(sa.String(2000))

    # Scores
    quality_score: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False, default=0)
    fraud_score: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    fraud_reasons: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, nullable=False, default=list
    )
    fraud_model_version: Mapped[int | None] = mapped_column(sa.Integer)
    # The signals the model scored, kept so a review decision trains on exactly these.
    fraud_features: Mapped[dict[str, float]] = mapped_column(JSONType, nullable=False, default=dict)
    # Quarantine reasons and data-quality flags, coded (see quality.problems).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)

    # Origin
    source: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    source_key: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    source_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# A lead read as a plain row of some of its columns, named as Lead's attributes (a search
# page reads rows, not entities).
LeadRow = sa.Row[*tuple[Any, ...]]


class LeadMatchKey(Base):
    """Blocking keys (phone, e-mail, address, parcel, phonetic name + ZIP) of a lead.

    A new record is compared only with the leads that share one of its keys, so matching
    costs an index lookup and a handful of comparisons whatever the size of the store.
    """

    __tablename__ = "lead_match_keys"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class MatchStatus(enum.StrEnum):
    OPEN = "open"
    MERGED = "merged"
    DISMISSED = "dismissed"


class PossibleDuplicate(UuidPk, Base):
    """Two leads that look alike but not enough to merge on their own: an operator decides."""

    __tablename__ = "possible_duplicates"
    __table_args__ = (sa.UniqueConstraint("lead_id", "other_lead_id"),)

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    other_lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    reasons: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    status: Mapped[MatchStatus] = mapped_column(str_enum(MatchStatus), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
