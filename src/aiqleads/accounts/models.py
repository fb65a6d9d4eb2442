"""Tables of accounts and authentication."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from aiqleads.kit.db import Base, Timestamped, UuidPk
from aiqleads.kit.dialect import JSONType, UTCDateTime, UuidType, str_enum


class Role(enum.StrEnum):
    AGENT = "agent"
    ADMIN = "admin"


class User(UuidPk, Timestamped, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(320), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    role: Mapped[Role] = mapped_column(str_enum(Role), nullable=False, default=Role.AGENT)
    # Subscription plan (basic, pro, enterprise): prices carry its discount.
    plan: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="basic")
    # Requests per minute set by an operator (Enterprise's custom limit); the plan's if None.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(sa.Integer)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    preferred_markets: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    notification_preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONType, nullable=False, default=dict
    )
    time_zone: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="UTC")
    # TOTP secrets are encrypted with a key derived from the service secret.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(300))
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.String(300))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last accepted TOTP time step: a code for this step or an earlier one is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Bumped to end every session (password reset); access tokens carry it as `sv`.
    session_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)


class RefreshToken(UuidPk, Base):
    """An opaque, single-use refresh token (stored hashed) in a rotation family."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(UuidType, nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginThrottle(Base):
    """Failed logins per normalised e-mail, known or not (keyed by an HMAC, not the address)."""

    __tablename__ = "login_throttles"

    email_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


class EmailToken(UuidPk, Base):
    """A single-use token sent by e-mail (verification, password reset), stored hashed."""

    __tablename__ = "email_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose), nullable=False)
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A verification link carries the password hash and name of the registration it was sent
    # for: it verifies only with that password, and sets both, so no registration of an
    # unverified address wins over another (migration 0026; None on older links).
    password_hash: Mapped[str | None] = mapped_column(sa.String(200))
    name: Mapped[str | None] = mapped_column(sa.String(200))


class RecoveryCode(UuidPk, Base):
    """A one-time 2FA recovery code, stored hashed."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(UuidPk, Base):
    """A scoped key for enterprise integrations; the secret is shown once and stored hashed."""

    __tablename__ = "api_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
