"""All SQL of accounts and authentication."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import (
    ApiKey,
    EmailToken,
    LoginThrottle,
    RecoveryCode,
    RefreshToken,
    TokenPurpose,
    User,
)
from aiqleads.kit.dialect import upsert


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: sa.orm.DeclarativeBase) -> None:
        self.session.add(row)
        await self.session.flush()

    # users
    async def user(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def user_by_email(self, email: str) -> User | None:
        return await self.session.scalar(sa.select(User).where(User.email == email))

    # login throttling
    async def throttle(self, email_key: str) -> LoginThrottle | None:
        return await self.session.get(LoginThrottle, email_key)

    async def add_login_failure(self, email_key: str, now: datetime) -> int:
        """Count one failure atomically (no lost increments under concurrency); the new count."""
        stmt = upsert(self.session.get_bind().dialect.name, LoginThrottle).values(
            email_key=email_key, failures=1, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[LoginThrottle.email_key],
            set_={"failures": LoginThrottle.failures + 1, "updated_at": now},
        ).returning(LoginThrottle.failures)
        failures: int = (await self.session.execute(stmt)).scalar_one()
        return failures

    async def lock_login(self, email_key: str, until: datetime) -> None:
        await self.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.email_key == email_key)
            .values(locked_until=until)
        )

    async def clear_throttle(self, email_key: str) -> None:
        await self.session.execute(
            sa.delete(LoginThrottle).where(LoginThrottle.email_key == email_key)
        )

    # refresh tokens
    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        return await self.session.scalar(
            sa.select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )

    async def mark_refresh_used(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Consume a token once; False if a concurrent request consumed it first."""
        result = await self.session.execute(
            sa.update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )

    async def revoke_user_refresh_tokens(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )

    # e-mail tokens
    async def email_token(self, token_hash: str, purpose: TokenPurpose) -> EmailToken | None:
        return await self.session.scalar(
            sa.select(EmailToken).where(
                EmailToken.token_hash == token_hash, EmailToken.purpose == purpose
            )
        )

    # recovery codes
    async def unused_recovery_codes(self, user_id: uuid.UUID) -> list[RecoveryCode]:
        rows = await self.session.scalars(
            sa.select(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        )
        return list(rows)

    async def delete_recovery_codes(self, user_id: uuid.UUID) -> None:
        await self.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    # api keys
    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == key_hash))

    async def api_keys_of(self, user_id: uuid.UUID) -> list[ApiKey]:
        rows = await self.session.scalars(
            sa.select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc())
        )
        return list(rows)

    async def revoke_api_keys(self, user_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            sa.update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def api_key_by_id(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def api_key_of(self, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        """A user's own key; another user's key is indistinguishable from a missing one."""
        return await self.session.scalar(
            sa.select(ApiKey).where(
                ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
            )
        )

    async def touch_api_key(self, key_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            sa.update(ApiKey)
            .where(
                ApiKey.id == key_id, sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at)
            )
            .values(last_used_at=at)
        )

    async def prune(self, now: datetime, idle: timedelta) -> None:
        """Delete lockout counters idle for `idle` (unless locked) and dead tokens."""
        await self.session.execute(
            sa.delete(LoginThrottle).where(
                LoginThrottle.updated_at < now - idle,
                sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
            )
        )
        await self.session.execute(sa.delete(EmailToken).where(EmailToken.expires_at < now - idle))
        await self.session.execute(
            sa.delete(RefreshToken).where(RefreshToken.expires_at < now - idle)
        )
