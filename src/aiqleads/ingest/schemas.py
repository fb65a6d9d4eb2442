"""Request and response bodies of the ingestion API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from aiqleads.ingest.models import RunStatus


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    trigger: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    quarantined_by_reason: dict[str, int]
    errors: list[str]
    replay_of: uuid.UUID | None


class RejectedRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_key: str
    outcome: str
    problems: list[dict[str, Any]]
    payload: dict[str, Any]


class RunDetailOut(RunOut):
    rejected: list[RejectedRecordOut] = Field(
        default_factory=list, description="Quarantined and failed records (first 100)"
    )


class IntakeConsent(BaseModel):
    """The TCPA consent the form showed and the consumer accepted."""

    captured_at: AwareDatetime = Field(
        description="When the consumer agreed, with its time zone (as ISO 8601 writes it)"
    )
    text: str = Field(min_length=10, max_length=5000)
    url: str | None = Field(default=None, max_length=2000)
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)
    certificate_url: str | None = Field(default=None, max_length=2000)

    @field_validator("captured_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # "0001-01-01T00:30+01:00"
            raise ValueError("the time lies outside the calendar in UTC") from None


class IntakeIn(BaseModel):
    """One lead from a web form. Field values are taken as typed; cleaning happens in the
    pipeline, and a value it cannot use is reported back as a coded problem."""

    model_config = ConfigDict(extra="allow")

    external_id: str | None = Field(
        default=None, max_length=300, description="Your id for the submission (idempotency)"
    )
    consent: IntakeConsent


class IntakeOut(BaseModel):
    run_id: uuid.UUID
    outcome: str
    lead_id: uuid.UUID | None
    problems: list[dict[str, Any]]


class WebhookAck(BaseModel):
    received: int
    run_id: uuid.UUID | None = None
