"""Request and response bodies of the leads API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiqleads.ingest.models import Outcome
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity
from aiqleads.quality.dedup import field_origins


class SourceRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    source_key: str
    outcome: Outcome
    current: bool
    trust: float
    received_at: datetime
    source_updated_at: datetime | None
    problems: list[dict[str, Any]]
    payload: dict[str, Any] = Field(description="The raw record exactly as the source sent it")


class LeadAdminOut(BaseModel):
    """Everything about a lead, for operators: golden fields, provenance, reasons, raw records."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: LeadStatus
    kind: str
    exclusivity: Exclusivity
    max_sales: int
    sales_count: int
    market: str | None
    merged_into_id: uuid.UUID | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    phone_type: str | None
    email: str | None
    address: str | None
    street_number: str | None
    street_pre_direction: str | None
    street_name: str | None
    street_suffix: str | None
    street_post_direction: str | None
    unit_type: str | None
    unit_number: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    zip4: str | None
    latitude: float | None
    longitude: float | None
    geocode_precision: str | None
    h3_r7: str | None
    h3_r9: str | None
    property_type: str | None
    beds: int | None
    baths: float | None
    living_area_sqft: int | None
    lot_size_sqft: int | None
    year_built: int | None
    list_price_cents: int | None
    days_on_market: int | None
    parcel_number: str | None
    listing_status: str | None
    description: str | None
    consent_captured_at: datetime | None
    consent_text: str | None
    consent_url: str | None
    consent_ip: str | None
    consent_user_agent: str | None
    consent_certificate_url: str | None
    quality_score: int
    fraud_score: float
    fraud_reasons: list[dict[str, Any]]
    fraud_model_version: int | None
    problems: list[dict[str, Any]]
    source: str
    source_key: str
    source_count: int
    provenance: dict[str, Any]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    source_updated_at: datetime | None
    records: list[SourceRecordOut] = Field(default_factory=list)
    possible_duplicates: list[PossibleDuplicateOut] = Field(default_factory=list)

    @field_validator("provenance", mode="before")
    @classmethod
    def _by_field(cls, value: Any) -> Any:
        return field_origins(value) if isinstance(value, dict) else value


class PossibleDuplicateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    lead_id: uuid.UUID
    other_lead_id: uuid.UUID
    score: float
    reasons: list[str]
    status: str
    created_at: datetime


class ReviewItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    market: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None
    address: str | None
    fraud_score: float
    fraud_reasons: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    quality_score: int
    source: str
    created_at: datetime


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=500)


class MergeIn(BaseModel):
    other_lead_id: uuid.UUID = Field(description="The lead to fold into this one")


class UnmergeIn(BaseModel):
    record_id: uuid.UUID = Field(description="The source record to split off into its own lead")


LeadAdminOut.model_rebuild()
