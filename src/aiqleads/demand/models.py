"""Demand events: the raw signal behind pricing, market insights and recommendations."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class DemandKind(enum.StrEnum):
    SEARCH = "search"
    VIEW = "view"
    CART_ADD = "cart_add"
    PURCHASE = "purchase"


class DemandEvent(UuidPk, Base):
    """One search, lead view, cart add or purchase by one agent."""

    __tablename__ = "demand_events"
    __table_args__ = (
        sa.Index("ix_demand_events_market_kind_at", "market", "kind", "created_at"),
        sa.Index("ix_demand_events_lead_at", "lead_id", "created_at"),
    )

    kind: Mapped[DemandKind] = mapped_column(str_enum(DemandKind), nullable=False)
    # No foreign keys: events are written in batches after the request, and a lead merged
    # away or an account deleted meanwhile must not make the whole batch fail.
    user_id: Mapped[uuid.UUID | None] = mapped_column(UuidType)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(UuidType)
    market: Mapped[str | None] = mapped_column(sa.String(64))
    lead_kind: Mapped[str | None] = mapped_column(sa.String(32))
    property_type: Mapped[str | None] = mapped_column(sa.String(20))
    # A search's filters and result count.
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
