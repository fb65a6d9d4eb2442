"""Service settings: one class, read from `AIQLEADS_*` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A development-only secret. Production refuses to start with it (see `check_production`).
DEFAULT_SECRET = "dev-insecure-secret-change-me-dev-insecure-secret"
MIN_SECRET_LENGTH = 32


class SettingsError(RuntimeError):
    """The configuration cannot be used; the message says what to change."""


class Settings(BaseSettings):
    """Everything the service reads from its environment, with embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="AIQLEADS_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"

    database_url: str = "sqlite+aiosqlite:///./var/aiqleads.db"
    database_pool_size: int = 20
    redis_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "AIQLeads <no-reply@aiqleads.local>"

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    jwt_issuer: str = "aiqleads"
    jwt_audience: str = "aiqleads-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    email_token_ttl_hours: int = 24
    password_reset_ttl_minutes: int = 60

    login_max_failures: int = 5
    login_lockout_base_seconds: int = 60
    login_lockout_max_seconds: int = 3600
    # How long a lead stays in a Basic buyer's cart (Pro and Enterprise may extend a hold).
    cart_hold_minutes: int = 15

    # Send attempts before a message is `failed` (operators can send it again). Retries back
    # off from 30 s to hourly: 30 attempts last about a day, as mail servers queue for days
    # (8 gave up after an hour's outage, verification links and receipts with it).
    mail_max_attempts: int = 30

    # Commerce (ADR 0007). Plans and credit packs are data; with no Stripe key, payments are
    # manual (an operator marks invoices paid).
    plans_file: Path | None = None
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    # A subscription whose renewal is unpaid keeps its plan this long, then falls to Basic.
    billing_grace_days: int = 7
    # Buyers may dispute a purchased lead this long after buying it.
    dispute_window_days: int = 7
    # Clear disputes are refunded at once while a buyer's automatic refunds of the last
    # `dispute_window_days` stay within this share of their purchases of those days; beyond
    # it an operator decides.
    dispute_auto_approve_percent: int = 10
    # Per-plan API rate limits (sliding minute; in-process, or Redis when configured).
    rate_limits: bool = True
    # Register, verify-email, login and password-reset requests per client address per
    # minute (each hashes a password or sends mail before anyone is signed in); 0: no limit.
    sign_in_requests_per_minute: int = 30

    markets_file: Path | None = None
    sources_file: Path | None = None
    # Facebook app: the secret signs webhook bodies; the verify token answers the handshake.
    facebook_app_secret: SecretStr | None = None
    facebook_verify_token: SecretStr | None = None
    facebook_graph_url: str = "https://graph.facebook.com/v21.0"
    facebook_access_token: SecretStr | None = None
    linkedin_client_secret: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool | None = None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in {"smtp", "smtps"}:
            raise ValueError(
                "AIQLEADS_SMTP_URL must look like smtp://user:pass@host:587?starttls=true or smtps://host:465"
            )
        return value or None

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        return self.is_production if self.log_json is None else self.log_json

    @cached_property
    def secret_bytes(self) -> bytes:
        return self.secret_key.get_secret_value().encode()

    def check_production(self) -> None:
        """Refuse a production start with settings that are only safe on a laptop."""
        if not self.is_production:
            return
        problems: list[str] = []
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < 8:
            problems.append(
                f"AIQLEADS_SECRET_KEY is the default or weak; set at least {MIN_SECRET_LENGTH} "
                "random characters, e.g. from\n"
                "  python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.is_sqlite:
            problems.append(
                "AIQLEADS_DATABASE_URL points at SQLite; production needs PostgreSQL+PostGIS "
                "(postgresql+asyncpg://user:password@host:5432/aiqleads)"
            )
        if "://127.0.0.1" in self.public_url or "://localhost" in self.public_url:
            problems.append(
                "AIQLEADS_PUBLIC_URL is a loopback address; set the URL users reach the service "
                "at (links in e-mails point there)"
            )
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append(
                "AIQLEADS_STRIPE_SECRET_KEY is set without AIQLEADS_STRIPE_WEBHOOK_SECRET; "
                "payments would never be recorded (copy the endpoint's signing secret, whsec_...)"
            )
        if problems:
            raise SettingsError("refusing to start in production: " + "; ".join(problems))
