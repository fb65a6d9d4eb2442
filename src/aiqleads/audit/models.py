"""Audit events: append-only, one row per change an operator or the system made."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType
from aiqleads.kit.observability import MAX_REQUEST_ID


class AuditEvent(UuidPk, Base):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_subject", "subject_type", "subject_id"),)

    # No foreign key: the trail outlives the accounts it names.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UuidType)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    subject_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    subject_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    request_id: Mapped[str | None] = mapped_column(sa.String(MAX_REQUEST_ID))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
