"""Prices, their history and the versions of each market's pricing configuration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType


class PricingConfigVersion(Base):
    """One saved version of a market's pricing; the highest version is in force. Version 0
    is the built-in default and is not stored."""

    __tablename__ = "pricing_configs"

    market: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="SET NULL")
    )


class PriceSnapshot(Base):
    """Demand and supply of one segment (market and kind) as of the last recompute, with the
    configuration version then in force. A lead's price is a pure function of its facts and
    its segment's snapshot, so the price shown, the price explained and the price quoted at
    cart-add are the same number until the next recompute."""

    __tablename__ = "price_snapshots"

    market: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    demand: Mapped[float] = mapped_column(sa.Float, nullable=False)
    market_demand: Mapped[float] = mapped_column(sa.Float, nullable=False)
    available: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    config_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class LeadPrice(Base):
    """A lead's price before any plan discount, as of the last recompute (for sorting,
    insights and history; quotes recompute it from the snapshot)."""

    __tablename__ = "lead_prices"
    __table_args__ = (sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),)

    # No foreign key to leads, here or in price_history: both are written a million rows at a
    # time by the recompute, from leads it has just read, and leads are never deleted (they
    # change status). PostgreSQL's check locks the lead's row for each price written (17 µs a
    # row, a third of a first recompute of 1,000,000 leads; ADR 0006).
    lead_id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True)
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    config_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class PriceChange(UuidPk, Base):
    """Every price a lead has had (a row only when it changed)."""

    __tablename__ = "price_history"
    __table_args__ = (sa.Index("ix_price_history_lead_at", "lead_id", "computed_at"),)

    lead_id: Mapped[uuid.UUID] = mapped_column(UuidType, nullable=False)  # see LeadPrice
    price_cents: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    config_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
