"""Holds: a lead in a buyer's cart, at the price quoted when it was added, until it lapses."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class HoldStatus(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"  # taken out of the cart
    EXPIRED = "expired"  # lapsed
    PURCHASED = "purchased"


class Hold(UuidPk, Base):
    __tablename__ = "holds"
    __table_args__ = (
        # The database, not only the code: one active hold of an exclusive lead, and one
        # active hold per buyer of any lead.
        sa.Index(
            "uq_holds_exclusive_active",
            "lead_id",
            unique=True,
            sqlite_where=sa.text("status = 'active' AND exclusive"),
            postgresql_where=sa.text("status = 'active' AND exclusive"),
        ),
        sa.Index(
            "uq_holds_buyer_active",
            "lead_id",
            "buyer_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
        sa.Index("ix_holds_status_expires", "status", "expires_at"),
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="RESTRICT"), nullable=False
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    exclusive: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    status: Mapped[HoldStatus] = mapped_column(str_enum(HoldStatus), nullable=False)
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)  # locked
    config_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # The explained price quoted at cart-add (pricing.schemas.PriceOut as JSON): what
    # `GET /leads/{id}/price` shows the holder while the price is locked. NULL before 0030.
    quote: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # "lapses soon" sent
