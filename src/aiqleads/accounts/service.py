"""Accounts and authentication rules. Services flush; the unit of work commits."""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts import passwords, totp
from aiqleads.accounts.models import (
    ApiKey,
    EmailToken,
    RecoveryCode,
    RefreshToken,
    Role,
    TokenPurpose,
    User,
)
from aiqleads.accounts.repository import AccountRepository
from aiqleads.accounts.schemas import (
    ApiKeyCreate,
    NotificationPreferences,
    Scope,
    TokenPair,
    UserPatch,
)
from aiqleads.accounts.tasks import TOUCH_API_KEY
from aiqleads.accounts.tokens import (
    API_KEY_PREFIX,
    InvalidToken,
    decode_access_token,
    digest,
    issue_access_token,
    keyed_digest,
    new_secret,
)
from aiqleads.audit.service import record as audit
from aiqleads.kit.db import defer_job
from aiqleads.kit.dialect import lock_key
from aiqleads.kit.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from aiqleads.mail.service import queue_email
from aiqleads.runtime import Runtime

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.AGENT: frozenset(
        {Scope.ACCOUNT_READ, Scope.ACCOUNT_WRITE, Scope.LEADS_READ, Scope.LEADS_BUY}
    ),
    Role.ADMIN: frozenset(Scope),
}
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do: a signed-in user or an API key."""

    user: User
    scopes: frozenset[Scope]
    api_key_id: uuid.UUID | None = None

    @property
    def interactive(self) -> bool:
        return self.api_key_id is None

    @property
    def operator(self) -> bool:
        """An admin acting as one (an admin's key without `admin:read` is not)."""
        return self.user.role == Role.ADMIN and Scope.ADMIN_READ in self.scopes


def normalise_email(raw: str) -> str:
    """Syntax-checked and lower-cased: the one spelling an account is known by."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid(f"The e-mail address is not valid: {exc}", code="invalid_email") from exc


# E-mails to one address that anyone can trigger, per kind and hour.
UNSOLICITED_MAILS_PER_HOUR = 5


def _login_identity(raw: str) -> tuple[str, bool]:
    """What the lockout counts and whether it is a valid address (else no account has it)."""
    try:
        return normalise_email(raw), True
    except AppError:
        return raw.strip().lower(), False


class AccountService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.settings = runtime.settings
        self.clock = runtime.clock
        self.repo = AccountRepository(session)

    # registration and e-mail verification

    async def register(self, email: str, password: str, name: str, requester: str = "") -> None:
        """Create an unverified agent, or tell an existing owner someone tried; same answer."""
        email = normalise_email(email)
        reason = passwords.weakness(password, email, name)
        if reason:
            raise Invalid(reason, code="weak_password")
        password_hash = await _hash(password)  # hashed either way: same timing
        existing = await self.repo.user_by_email(email)
        if existing is not None:
            if existing.email_verified_at is None:
                # Until an address is verified, no registration of it wins: each gets its own
                # link, carrying its own password and name, and following a link sets them
                # (`verify_email`). The owner, registering after a stranger did, would
                # otherwise verify an account the stranger knows the password of.
                if await self._unsolicited_allowed(existing, "verify_email", requester):
                    await self._send_verification(existing, password_hash, name.strip())
            elif await self._unsolicited_allowed(existing, "registration_attempt", requester):
                await self._mail(
                    existing,
                    "registration_attempt",
                    "Someone tried to register with your e-mail address",
                    "Someone tried to create an AIQLeads account with this e-mail address.\n"
                    "You already have an account. If it was you, sign in or reset your password:\n"
                    f"{self.settings.public_url}/reset-password\n\n"
                    "If it was not you, no action is needed.",
                )
            return
        now = self.clock.now()
        user = User(
            email=email,
            password_hash=password_hash,
            name=name.strip(),
            role=Role.AGENT,
            preferred_markets=[],
            notification_preferences=NotificationPreferences().model_dump(),
            time_zone="UTC",
            session_version=1,
            created_at=now,
            updated_at=now,
        )
        await self.repo.add(user)
        await self._send_verification(user, password_hash, user.name)

    async def _send_verification(self, user: User, password_hash: str, name: str) -> None:
        token = await self._email_token(
            user,
            TokenPurpose.VERIFY_EMAIL,
            timedelta(hours=self.settings.email_token_ttl_hours),
            password_hash=password_hash,
            name=name,
        )
        await self._mail(
            user,
            "verify_email",
            "Confirm your AIQLeads e-mail address",
            f"Hello {name},\n\nConfirm your e-mail address to start using AIQLeads:\n"
            f"{self.settings.public_url}/verify-email?token={token}\n\n"
            f"(API: POST /api/v1/auth/verify-email with token {token} and your password)\n\n"
            f"The link expires in {self.settings.email_token_ttl_hours} hours.",
            secret=True,
        )

    async def verify_email(self, token: str, password: str | None = None) -> None:
        """Verify the address with a link and the password registered with it. Someone else
        may have registered the address too (before or after its owner), and their link
        reads like the owner's: a link sets its own registration's password, so it asks for
        that password, and the owner following a stranger's link is refused, not handed the
        stranger's account. (Links issued before 2026-12-03 carry no password.)"""
        row = await self._use_email_token(token, TokenPurpose.VERIFY_EMAIL)
        if row.password_hash is not None and not (
            password is not None and await _verify(row.password_hash, password)
        ):
            raise AppError(
                "Enter the password you registered with (or follow the link of the "
                "registration you made)",
                code="password_mismatch",
                status=400,
            )
        user = await self.repo.user(row.user_id)
        assert user is not None
        if user.email_verified_at is None:
            now = self.clock.now()
            if row.password_hash is not None:  # the registration this link was sent for
                user.password_hash = row.password_hash
                user.name = row.name or user.name
            user.email_verified_at = now
            user.updated_at = now

    async def _email_token(
        self,
        user: User,
        purpose: TokenPurpose,
        ttl: timedelta,
        *,
        password_hash: str | None = None,
        name: str | None = None,
    ) -> str:
        token = new_secret()
        now = self.clock.now()
        await self.repo.add(
            EmailToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=digest(token),
                created_at=now,
                expires_at=now + ttl,
                password_hash=password_hash,
                name=name,
            )
        )
        return token

    async def _use_email_token(self, token: str, purpose: TokenPurpose) -> EmailToken:
        row = await self.repo.email_token(digest(token), purpose)
        now = self.clock.now()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise AppError("The link is invalid, used or expired", code="invalid_token", status=400)
        row.used_at = now
        return row

    async def _unsolicited_allowed(self, user: User, kind: str, requester: str) -> bool:
        """Whether another e-mail of `kind` that anyone can make us send to `user` (by
        registering their address or asking for its reset link) may go now: a few an hour
        per requester (client address), or the endpoints would flood the inbox; counted per
        requester, so a stranger using them up cannot keep the owner's own reset link from
        coming. Past that the answer stays the same."""
        decision = await self.runtime.limiter.hit(
            f"mail|{kind}|{user.id}|{requester}",
            UNSOLICITED_MAILS_PER_HOUR,
            3600.0,
            self.clock.now().timestamp(),
        )
        return decision.allowed

    async def _mail(
        self, user: User, kind: str, subject: str, body: str, *, secret: bool = False
    ) -> None:
        await queue_email(
            self.session,
            self.runtime,
            kind=kind,
            to=user.email,
            subject=subject,
            body=body,
            contains_secret=secret,
        )

    # login, lockout and tokens

    async def login(self, email: str, password: str, totp_code: str | None) -> TokenPair:
        identity, valid = _login_identity(email)
        key = keyed_digest(self.settings, identity)
        # One sign-in per address at a time: guesses sent at once would all pass the lock
        # below before the first failure was counted (SQLite's write lock already queues them).
        await lock_key(self.session, f"login|{key}")
        await self._refuse_while_locked(key)
        user = await self.repo.user_by_email(identity) if valid else None
        if not await _verify(user.password_hash if user else None, password):
            await self._count_failure(key)
            raise Unauthorized(
                "The e-mail or password is wrong", code="invalid_credentials", commit=True
            )
        assert user is not None
        if user.email_verified_at is None:
            raise Forbidden("Confirm your e-mail address first", code="email_unverified")
        if user.totp_enabled_at is not None:
            if not totp_code:
                raise Unauthorized(
                    "Enter the code from your authenticator app", code="totp_required"
                )
            if not await self._check_second_factor(user, totp_code):
                await self._count_failure(key)
                raise Unauthorized(
                    "The code is wrong or was already used", code="invalid_totp", commit=True
                )
        await self.repo.clear_throttle(key)
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await _hash(password)
        return await self._issue_pair(user, family_id=uuid.uuid4())

    async def _refuse_while_locked(self, key: str) -> None:
        now = self.clock.now()
        throttle = await self.repo.throttle(key)
        if throttle and throttle.locked_until and throttle.locked_until > now:
            retry_after = math.ceil((throttle.locked_until - now).total_seconds())
            raise AppError(
                "Too many failed sign-ins; try again later",
                code="login_locked",
                status=429,
                headers={"Retry-After": str(retry_after)},
            )

    async def _count_failure(self, key: str) -> None:
        now = self.clock.now()
        failures = await self.repo.add_login_failure(key, now)
        over = failures - self.settings.login_max_failures
        if over >= 0:
            delay = min(
                self.settings.login_lockout_base_seconds * 2**over,
                self.settings.login_lockout_max_seconds,
            )
            await self.repo.lock_login(key, now + timedelta(seconds=delay))

    async def _issue_pair(self, user: User, family_id: uuid.UUID) -> TokenPair:
        now = self.clock.now()
        refresh = new_secret()
        await self.repo.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id,
                token_hash=digest(refresh),
                created_at=now,
                expires_at=now + timedelta(days=self.settings.refresh_token_ttl_days),
            )
        )
        access = issue_access_token(
            self.settings, user.id, user.role.value, user.session_version, now
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=self.settings.access_token_ttl_seconds,
        )

    async def refresh(self, token: str) -> TokenPair:
        """Rotate: the presented token is spent; a spent token shown again burns its family."""
        row = await self.repo.refresh_token(digest(token))
        now = self.clock.now()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise Unauthorized("The refresh token is not valid", code="invalid_token")
        if row.used_at is not None or not await self.repo.mark_refresh_used(row.id, now):
            await self.repo.revoke_family(row.family_id, now)
            raise Unauthorized(
                "This refresh token was already used; every session of its family is signed out",
                code="token_reused",
                commit=True,
            )
        user = await self.repo.user(row.user_id)
        assert user is not None
        return await self._issue_pair(user, family_id=row.family_id)

    async def logout(self, token: str) -> None:
        row = await self.repo.refresh_token(digest(token))
        if row is not None:
            await self.repo.revoke_family(row.family_id, self.clock.now())

    async def authenticate(self, bearer: str) -> Principal:
        """Resolve `Authorization: Bearer` (an access token or an API key) to a principal."""
        if bearer.startswith(API_KEY_PREFIX):
            return await self._authenticate_api_key(bearer)
        try:
            claims = decode_access_token(self.settings, bearer, self.clock.now())
        except InvalidToken as exc:
            raise Unauthorized(
                f"The access token is not valid: {exc}", code="invalid_token"
            ) from exc
        user = await self.repo.user(claims.user_id)
        if user is None or user.session_version != claims.session_version:
            raise Unauthorized("The session has ended; sign in again", code="invalid_token")
        return Principal(user=user, scopes=ROLE_SCOPES[user.role])

    async def _authenticate_api_key(self, key: str) -> Principal:
        row = await self.repo.api_key_by_hash(digest(key))
        if row is None or row.revoked_at is not None:
            raise Unauthorized("The API key is not valid", code="invalid_api_key")
        user = await self.repo.user(row.user_id)
        assert user is not None
        scopes = frozenset(Scope(s) for s in row.scopes) & ROLE_SCOPES[user.role]
        now = self.clock.now()
        if row.last_used_at is None or now - row.last_used_at >= API_KEY_TOUCH_INTERVAL:
            # After commit, as a job: a read request stays a read-only transaction.
            defer_job(self.session, TOUCH_API_KEY, {"key_id": str(row.id), "at": now.isoformat()})
        return Principal(user=user, scopes=scopes, api_key_id=row.id)

    # password reset

    async def request_password_reset(self, email: str, requester: str = "") -> None:
        try:
            user = await self.repo.user_by_email(normalise_email(email))
        except AppError:
            return
        if user is None or not await self._unsolicited_allowed(user, "reset_password", requester):
            return
        token = await self._email_token(
            user,
            TokenPurpose.RESET_PASSWORD,
            timedelta(minutes=self.settings.password_reset_ttl_minutes),
        )
        await self._mail(
            user,
            "reset_password",
            "Reset your AIQLeads password",
            f"Hello {user.name},\n\nSomeone asked to reset your AIQLeads password. If it was you:\n"
            f"{self.settings.public_url}/reset-password?token={token}\n\n"
            f"(API: POST /api/v1/auth/password-reset/confirm with token {token})\n\n"
            f"The link expires in {self.settings.password_reset_ttl_minutes} minutes. "
            "If it was not you, ignore this message; your password stays as it is.",
            secret=True,
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        row = await self.repo.email_token(digest(token), TokenPurpose.RESET_PASSWORD)
        user = await self.repo.user(row.user_id) if row else None
        reason = passwords.weakness(new_password, user.email, user.name) if user else None
        if reason:
            raise Invalid(reason, code="weak_password")
        row = await self._use_email_token(token, TokenPurpose.RESET_PASSWORD)
        assert user is not None
        now = self.clock.now()
        user.password_hash = await _hash(new_password)
        user.session_version += 1  # every access token issued before is now refused
        user.email_verified_at = user.email_verified_at or now  # they proved they own it
        user.updated_at = now
        await self.repo.revoke_user_refresh_tokens(user.id, now)
        # A reset is how an owner takes an account back: keys someone else made go too.
        await self.repo.revoke_api_keys(user.id, now)
        await self.repo.clear_throttle(keyed_digest(self.settings, user.email))

    # two-factor authentication

    async def totp_setup(self, user: User) -> tuple[str, str]:
        if user.totp_enabled_at is not None:
            raise Conflict("Two-factor authentication is already on", code="totp_already_enabled")
        secret = totp.new_totp_secret()
        user.totp_pending_secret = totp.encrypt_secret(self.settings.secret_bytes, secret)
        await self.session.flush()
        return secret, totp.provisioning_uri(secret, user.email)

    async def totp_enable(self, user: User, code: str) -> list[str]:
        if user.totp_enabled_at is not None:
            raise Conflict("Two-factor authentication is already on", code="totp_already_enabled")
        if user.totp_pending_secret is None:
            raise Conflict("Start with POST /api/v1/auth/2fa/setup", code="totp_not_set_up")
        secret = totp.decrypt_secret(self.settings.secret_bytes, user.totp_pending_secret)
        step = totp.matching_step(secret, code, self.clock.now(), None)
        if step is None:
            raise Invalid(
                "The code is wrong; check your authenticator app's clock", code="invalid_totp"
            )
        now = self.clock.now()
        user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
        user.totp_enabled_at, user.totp_last_step = now, step
        user.updated_at = now
        await self.repo.delete_recovery_codes(user.id)
        codes = totp.new_recovery_codes()
        for code_ in codes:
            self.session.add(
                RecoveryCode(
                    user_id=user.id,
                    code_hash=keyed_digest(self.settings, totp.normalise_recovery_code(code_)),
                )
            )
        await self.session.flush()
        return codes

    async def totp_disable(self, user: User, code: str) -> None:
        if user.totp_enabled_at is None:
            raise Conflict("Two-factor authentication is off", code="totp_not_enabled")
        # Wrong codes count against the sign-in lockout: a stolen session must not guess
        # its way to turning the second factor off.
        key = keyed_digest(self.settings, user.email)
        await lock_key(self.session, f"login|{key}")
        await self._refuse_while_locked(key)
        if not await self._check_second_factor(user, code):
            await self._count_failure(key)
            raise Invalid("The code is wrong or was already used", code="invalid_totp", commit=True)
        await self.repo.clear_throttle(key)
        user.totp_secret = user.totp_pending_secret = None
        user.totp_enabled_at = user.totp_last_step = None
        user.updated_at = self.clock.now()
        await self.repo.delete_recovery_codes(user.id)

    async def _check_second_factor(self, user: User, code: str) -> bool:
        """A fresh TOTP code (never one already used) or an unused recovery code."""
        assert user.totp_secret is not None
        secret = totp.decrypt_secret(self.settings.secret_bytes, user.totp_secret)
        step = totp.matching_step(secret, code, self.clock.now(), user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            return True
        wanted = keyed_digest(self.settings, totp.normalise_recovery_code(code))
        for row in await self.repo.unused_recovery_codes(user.id):
            if row.code_hash == wanted:
                row.used_at = self.clock.now()
                return True
        return False

    # profile

    async def update_profile(self, user: User, patch: UserPatch) -> User:
        changes = patch.model_dump(exclude_unset=True)
        if "name" in changes and patch.name is not None:
            user.name = patch.name.strip()
        if "phone" in changes:
            user.phone = normalise_phone(patch.phone) if patch.phone else None
        if "preferred_markets" in changes and patch.preferred_markets is not None:
            unknown = [m for m in patch.preferred_markets if m not in self.runtime.markets]
            if unknown:
                known = ", ".join(m.slug for m in self.runtime.markets.all())
                raise Invalid(
                    f"Unknown market(s): {', '.join(unknown)}. Markets: {known}",
                    code="unknown_market",
                )
            user.preferred_markets = list(dict.fromkeys(patch.preferred_markets))
        if "notification_preferences" in changes and patch.notification_preferences is not None:
            user.notification_preferences = patch.notification_preferences.model_dump()
        if "time_zone" in changes and patch.time_zone is not None:
            try:
                ZoneInfo(patch.time_zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise Invalid(
                    f"Unknown time zone {patch.time_zone!r}; use an IANA name like America/Phoenix",
                    code="invalid_time_zone",
                ) from exc
            user.time_zone = patch.time_zone
        user.updated_at = self.clock.now()
        await self.session.flush()
        return user

    # API keys

    async def create_api_key(self, user: User, body: ApiKeyCreate) -> tuple[ApiKey, str]:
        not_allowed = set(body.scopes) - ROLE_SCOPES[user.role]
        if not_allowed:
            raise Forbidden(
                f"Your role cannot grant: {', '.join(sorted(not_allowed))}",
                code="scope_not_allowed",
            )
        secret = API_KEY_PREFIX + new_secret()
        row = ApiKey(
            user_id=user.id,
            name=body.name.strip(),
            prefix=secret[: len(API_KEY_PREFIX) + 8],
            key_hash=digest(secret),
            scopes=sorted(s.value for s in set(body.scopes)),
            created_at=self.clock.now(),
        )
        await self.repo.add(row)
        return row, secret

    async def list_api_keys(self, user: User) -> list[ApiKey]:
        return await self.repo.api_keys_of(user.id)

    async def revoke_api_key(self, user: User, key_id: uuid.UUID) -> None:
        row = await self.repo.api_key_of(user.id, key_id)
        if row is None:
            raise NotFound("No such API key")
        row.revoked_at = self.clock.now()

    # operators

    async def set_rate_limit(
        self, user_id: uuid.UUID, per_minute: int | None, operator: User
    ) -> User:
        """An operator's custom API limit for one account (Enterprise), or back to the plan's
        (audited)."""
        user = await self.repo.user(user_id)
        if user is None:
            raise NotFound("No such user", code="user_not_found")
        now = self.clock.now()
        audit(
            self.session,
            actor_id=operator.id,
            action="accounts.rate_limit",
            subject_type="user",
            subject_id=str(user.id),
            at=now,
            detail={"from": user.rate_limit_per_minute, "to": per_minute},
        )
        user.rate_limit_per_minute = per_minute
        user.updated_at = now
        return user

    async def create_admin(self, email: str, password: str, name: str) -> User:
        """A verified admin (CLI). An existing account with that e-mail is promoted."""
        email = normalise_email(email)
        reason = passwords.weakness(password, email, name)
        if reason:
            raise Invalid(reason, code="weak_password")
        now = self.clock.now()
        user = await self.repo.user_by_email(email)
        if user is None:
            user = User(
                email=email,
                name=name,
                preferred_markets=[],
                notification_preferences=NotificationPreferences().model_dump(),
                time_zone="UTC",
                session_version=1,
                created_at=now,
            )
            self.session.add(user)
        user.password_hash = await _hash(password)
        user.role = Role.ADMIN
        user.email_verified_at = user.email_verified_at or now
        user.updated_at = now
        await self.session.flush()
        return user


async def _hash(password: str) -> str:
    """argon2 takes ~50 ms of CPU: run it in a thread (it releases the GIL), not the loop."""
    return await asyncio.to_thread(passwords.hash_password, password)


async def _verify(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(passwords.verify_password, password_hash, password)


def normalise_phone(raw: str) -> str:
    """E.164, country code required (+1 702 555 0100 -> +17025550100)."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(
            "The phone number needs its country code, e.g. +1 702 555 0100", code="invalid_phone"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid("The phone number is not a valid number", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
