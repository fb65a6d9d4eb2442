"""Request and response bodies of accounts and authentication."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aiqleads.kit.body import NO_NUL, Text

# Generous ceilings so absurd bodies are refused before any hashing work.
EmailField = Field(min_length=3, max_length=320)
PasswordField = Field(min_length=1, max_length=4096)


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_NUL
]


class Scope(enum.StrEnum):
    """What an API key may do. Signed-in users hold every scope their role allows."""

    ACCOUNT_READ = "account:read"
    ACCOUNT_WRITE = "account:write"
    ADMIN_READ = "admin:read"
    LEADS_READ = "leads:read"
    LEADS_BUY = "leads:buy"  # hold, buy and dispute leads: spends credits


class RegisterIn(BaseModel):
    email: str = EmailField
    password: str = PasswordField
    name: Name


class Accepted(BaseModel):
    status: str = "accepted"
    detail: str


class TokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class VerifyEmailIn(TokenIn):
    password: str | None = Field(
        default=None, max_length=4096, description="The password you registered with"
    )


class VerifiedOut(BaseModel):
    status: str = "verified"


class LoginIn(BaseModel):
    email: str = EmailField
    password: str = PasswordField
    totp_code: str | None = Field(default=None, max_length=32, description="TOTP or recovery code")


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordResetRequestIn(BaseModel):
    email: str = EmailField


class PasswordResetConfirmIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = PasswordField


class TotpSetupOut(BaseModel):
    secret: str
    otpauth_uri: str


class TotpCodeIn(BaseModel):
    code: str = Field(
        min_length=1, max_length=32, description="TOTP code (or recovery code to disable)"
    )


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class TwoFactorStatus(BaseModel):
    enabled: bool


class NotificationPreferences(BaseModel):
    """Which notifications a user wants, and where."""

    model_config = ConfigDict(extra="forbid")

    email: bool = True
    in_app: bool = True
    new_matching_leads: bool = True
    hold_expiring: bool = True
    purchase_receipts: bool = True
    product_news: bool = False


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: str
    email_verified: bool
    phone: str | None
    preferred_markets: list[str]
    notification_preferences: NotificationPreferences
    time_zone: str
    two_factor_enabled: bool
    created_at: datetime


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    phone: str | None = Field(
        default=None,
        max_length=40,
        description="With country code: +1 702 555 0100; empty string clears",
    )
    preferred_markets: list[str] | None = Field(default=None, max_length=20)
    notification_preferences: NotificationPreferences | None = None
    time_zone: str | None = Field(
        default=None, max_length=64, description="IANA name, e.g. America/Phoenix"
    )


class ApiKeyCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret; shown only in this response")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class RateLimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_minute: int | None = Field(
        ge=1, le=1_000_000, description="Requests per minute; null returns to the plan's limit"
    )


class RateLimitOut(BaseModel):
    user_id: uuid.UUID
    plan: str
    per_minute: int = Field(description="The limit in force")
    custom: bool
