"""Ingestion's tables: every raw record kept, every run recorded, each source's sync state."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"  # became a new lead
    MERGED = "merged"  # joined an existing lead as a duplicate
    UPDATED = "updated"  # a newer version of a record we already had
    UNCHANGED = "unchanged"  # seen before, byte for byte: nothing to do
    QUARANTINED = "quarantined"  # kept, with coded reasons, for review
    FAILED = "failed"  # could not be parsed at all; raw payload kept for replay


class SourceRecord(UuidPk, Base):
    """One version of one record from one source, exactly as received, plus what we made of it.

    `fields` holds the normalised values, so the golden lead can be rebuilt from its records
    (survivorship) after a merge or an unmerge without parsing anything again.
    """

    __tablename__ = "source_records"
    __table_args__ = (
        sa.UniqueConstraint("source", "source_key", "content_hash"),
        sa.Index("ix_source_records_source_key", "source", "source_key"),
    )

    source: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    source_key: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    content_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), nullable=False)
    current: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    trust: Mapped[float] = mapped_column(sa.Float, nullable=False)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("ingestion_runs.id", ondelete="SET NULL"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the source could not be reached or read, or the run crashed or was
    # abandoned (its process stopped); `errors` says which, counts show what got in


class IngestionRun(UuidPk, Base):
    """One pass over one source: when, what came in and what became of it."""

    __tablename__ = "ingestion_runs"

    source: Mapped[str] = mapped_column(sa.String(64), nullable=False, index=True)
    trigger: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written with every batch and, while the run fetches, every minute: a running run whose
    # heartbeat is old lost its process.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, int]] = mapped_column(JSONType, nullable=False, default=dict)
    quarantined_by_reason: Mapped[dict[str, int]] = mapped_column(
        JSONType, nullable=False, default=dict
    )
    errors: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    replay_of: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, sa.ForeignKey("ingestion_runs.id", ondelete="SET NULL")
    )


class SourceState(Base):
    """Where a pull source's incremental sync got to, and its HTTP cache validators."""

    __tablename__ = "source_states"

    source: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    high_water_mark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    validators: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
