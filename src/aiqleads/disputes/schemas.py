"""Disputes as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiqleads.disputes.models import DisputeReason, DisputeStatus
from aiqleads.kit.body import Text


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purchase_id: uuid.UUID
    reason: DisputeReason
    note: Text = Field(default="", max_length=1000)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: Text = Field(min_length=1, max_length=500)


class FindingOut(BaseModel):
    check: str
    supports_claim: bool
    detail: str


class DisputeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    purchase_id: uuid.UUID
    lead_id: uuid.UUID
    buyer_id: uuid.UUID
    reason: DisputeReason
    note: str
    status: DisputeStatus
    evidence: list[FindingOut]
    auto_decided: bool
    decision_reason: str | None
    refund_cents: int
    created_at: datetime
    decided_at: datetime | None


class SourceRecordOut(BaseModel):
    source: str
    sold: int
    disputed: int
    refunded: int
    refund_rate: float = Field(description="Refunded sales per sale")
