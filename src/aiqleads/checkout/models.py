"""Orders and purchases: what a checkout bought, which is what reveals a lead's contact details.

One checkout is one `Order`, paid by one ledger transaction (reference: the order's id), with
one `Purchase` per lead. The database backs the rules a bug must not break: a buyer buys a
lead once (unique lead and buyer), an exclusive lead is sold once (a unique index over its
purchases), and a hold pays for one purchase at most (unique hold).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import UTCDateTime, UuidType, str_enum


class Order(UuidPk, Base):
    """One checkout: the leads a buyer held, bought together for one debit of credits."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.Index("ix_orders_buyer_created", "buyer_id", "created_at"),
        sa.CheckConstraint("total_cents >= 0", name="total_not_negative"),
    )

    buyer_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    total_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    item_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class PurchaseStatus(enum.StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"  # a dispute was approved: the credits went back


class Purchase(UuidPk, Base):
    """One buyer's purchase of one lead (a shared lead has one row per buyer)."""

    __tablename__ = "purchases"
    __table_args__ = (
        sa.UniqueConstraint("lead_id", "buyer_id"),
        # An exclusive lead is sold once, whatever the code above does.
        sa.Index(
            "uq_purchases_exclusive",
            "lead_id",
            unique=True,
            sqlite_where=sa.text("exclusive"),
            postgresql_where=sa.text("exclusive"),
        ),
        sa.Index("ix_purchases_buyer_created", "buyer_id", "created_at", "id"),
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
    )

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    order_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("orders.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    # The hold it paid for (unique: a hold is bought once).
    hold_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("holds.id", ondelete="RESTRICT"), nullable=False, unique=True
    )
    exclusive: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    status: Mapped[PurchaseStatus] = mapped_column(str_enum(PurchaseStatus), nullable=False)
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
