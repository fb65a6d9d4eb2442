"""Request and response bodies of the ingestion API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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

    captured_at: datetime
    text: str = Field(min_length=10, max_length=5000)
    url: str | None = Field(default=None, max_length=2000)
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)
    certificate_url: str | None = Field(default=None, max_length=2000)


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
