from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, UuidPk
from aiqleads.kit.dialect import UTCDateTime, str_enum


class EmailStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first or next attempt
    SENDING = "sending"  # claimed by a sender; a lapsed lease means it crashed
    SENT = "sent"
    FAILED = "failed"  # gave up after the maximum attempts; kept for operators


class OutboundEmail(UuidPk, Base):
    """The e-mail outbox: a message is a row before anything tries to send it."""

    __tablename__ = "outbound_emails"
    __table_args__ = (sa.Index("ix_outbound_emails_due", "status", "next_attempt_at"),)

    kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    to_address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    body_text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Carries a sign-in secret (verification or reset link): hidden from operators once
    # SMTP delivers it, since an admin who can read it could take the account over.
    contains_secret: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    status: Mapped[EmailStatus] = mapped_column(
        str_enum(EmailStatus),
        nullable=False,
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
