"""A buyer's dispute of one purchased lead, its evidence and the decision."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class DisputeReason(enum.StrEnum):
    WRONG_NUMBER = "wrong_number"
    DISCONNECTED = "disconnected"
    NOT_THE_OWNER = "not_the_owner"
    DUPLICATE = "duplicate"
    FAKE = "fake"
    NO_CONSENT = "no_consent"


class DisputeStatus(enum.StrEnum):
    OPEN = "open"  # waits for an operator
    APPROVED = "approved"  # refunded
    REJECTED = "rejected"


class Dispute(UuidPk, Base):
    __tablename__ = "disputes"
    __table_args__ = (
        sa.Index("ix_disputes_buyer_created", "buyer_id", "created_at", "id"),
        sa.Index("ix_disputes_status_created", "status", "created_at", "id"),
        sa.CheckConstraint("refund_cents >= 0", name="refund_not_negative"),
    )

    # One dispute per purchase.
    purchase_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("purchases.id", ondelete="RESTRICT"), nullable=False, unique=True
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    reason: Mapped[DisputeReason] = mapped_column(str_enum(DisputeReason, 20), nullable=False)
    note: Mapped[str] = mapped_column(sa.String(1000), nullable=False, default="")
    status: Mapped[DisputeStatus] = mapped_column(str_enum(DisputeStatus, 10), nullable=False)
    # [{"check", "supports_claim", "detail"}], gathered when the dispute was filed.
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    auto_decided: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UuidType)
    decision_reason: Mapped[str | None] = mapped_column(sa.String(500))
    refund_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
