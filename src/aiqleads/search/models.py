"""Saved searches: an agent's filters, checked for new matching leads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, Timestamped, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType


class SavedSearch(UuidPk, Timestamped, Base):
    __tablename__ = "saved_searches"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    notify: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    # Leads that went on sale after this instant are news to the agent.
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SavedSearchHit(Base):
    """A lead a saved search has announced: never announced twice, even when the lead goes
    back on sale after a lapsed hold, or is seen again by the overlapping check window."""

    __tablename__ = "saved_search_hits"

    saved_search_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("saved_searches.id", ondelete="CASCADE"), primary_key=True
    )
    lead_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
