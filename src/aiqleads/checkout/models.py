"""Purchases: the record that a buyer bought a lead, which is what reveals its contact details."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import UTCDateTime, UuidType


class Purchase(UuidPk, Base):
    """One buyer's purchase of one lead (a shared lead has one row per buyer)."""

    __tablename__ = "purchases"
    __table_args__ = (
        sa.UniqueConstraint("lead_id", "buyer_id"),
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
