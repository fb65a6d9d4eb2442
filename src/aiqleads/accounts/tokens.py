"""Access tokens (short-lived JWT) and opaque secrets (refresh, e-mail, API keys)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt

from aiqleads.settings import Settings

ALGORITHM = "HS256"  # pinned: decode accepts nothing else, so alg=none and swaps fail
ACCESS_TYP = "at+jwt"  # RFC 9068 header type of an access token
API_KEY_PREFIX = "aiq_"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    session_version: int


class InvalidToken(Exception):
    pass


def issue_access_token(
    settings: Settings, user_id: uuid.UUID, role: str, session_version: int, now: datetime
) -> str:
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "typ": "access",
        "role": role,
        "sv": session_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.access_token_ttl_seconds)).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(
        claims, settings.secret_bytes, algorithm=ALGORITHM, headers={"typ": ACCESS_TYP}
    )


# Tokens whose signature and claims were checked, and their expiry: an agent's client sends
# the same token with every request until it refreshes it, and checking it again was a tenth
# of a search's CPU. Only what the token itself says is kept; expiry is checked against the
# clock on every use, and the user's session version against the database (`authenticate`).
VERIFIED_TOKENS_KEPT = 10_000


@lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified(secret: bytes, audience: str, issuer: str, token: str) -> tuple[AccessClaims, int]:
    header = jwt.get_unverified_header(token)
    if header.get("typ") != ACCESS_TYP or header.get("alg") != ALGORITHM:
        raise InvalidToken("not an access token")
    claims = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_exp": False},
    )
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    found = AccessClaims(uuid.UUID(claims["sub"]), str(claims["role"]), int(claims["sv"]))
    return found, int(claims["exp"])


def decode_access_token(settings: Settings, token: str, now: datetime) -> AccessClaims:
    """Check signature, algorithm, issuer, audience, type and expiry against `now`."""
    try:
        claims, expires = _verified(
            settings.secret_bytes, settings.jwt_audience, settings.jwt_issuer, token
        )
    except InvalidToken:
        raise
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if expires <= int(now.timestamp()):
        raise InvalidToken("the access token has expired")
    return claims


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy random secret: enough, as it cannot be guessed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def keyed_digest(settings: Settings, value: str) -> str:
    """HMAC of a low-entropy value (an e-mail, a recovery code) under the service secret."""
    return hmac.new(settings.secret_bytes, value.encode(), hashlib.sha256).hexdigest()
