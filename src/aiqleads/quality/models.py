"""Quality's tables: versioned fraud models and the operators' review decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType


class ModelVersion(UuidPk, Base):
    """A trained model: its parameters as JSON (never pickles), features and metrics."""

    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    name: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    features: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    training_rows: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)


class LeadReview(UuidPk, Base):
    """An operator's decision on a quarantined lead; it becomes a training label."""

    __tablename__ = "lead_reviews"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False, index=True
    )
    decision: Mapped[str] = mapped_column(sa.String(10), nullable=False)  # approve | reject
    reason: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # The fraud features at decision time: the label trains on what the model saw.
    features: Mapped[dict[str, float]] = mapped_column(JSONType, nullable=False)
    fraud_score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
