from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aiqleads.mail.models import EmailStatus


class EmailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    to_address: str
    subject: str
    body_text: str
    status: EmailStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class RetriedOut(BaseModel):
    retried: int = Field(description="Failed messages put back in the outbox, due now")
