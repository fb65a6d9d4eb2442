"""Password hashing (argon2id) and the NIST SP 800-63B policy."""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
# Far above NIST's 64; a ceiling only so a megabyte "password" cannot tie up a worker.
MAX_LENGTH = 1024

# OWASP's argon2id minimum is m=19 MiB, t=2, p=1; we use m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
# Verified when the e-mail is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = HASHER.hash("aiqleads-dummy-password-for-timing")


@cache
def common_passwords() -> frozenset[str]:
    text = (
        resources.files("aiqleads.accounts")
        .joinpath("data/common-passwords.txt")
        .read_text("utf-8")
    )
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def normalise(password: str) -> str:
    """NFKC, as SP 800-63B asks, so the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


def weakness(password: str, *context: str) -> str | None:
    """Why a new password is refused, or None. No composition rules, by design."""
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in common_passwords():
        return "This password is one of the most commonly used passwords; choose another."
    words = {c.strip().lower() for c in context if c and len(c.strip()) >= 4} | {"aiqleads"}
    if lowered in words or lowered in {w.split("@")[0] for w in words}:
        return "The password must not be your name, your e-mail address or the service name."
    return None


def hash_password(password: str) -> str:
    return HASHER.hash(normalise(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check; `None` (no such account) still runs a full verification."""
    try:
        return (
            HASHER.verify(password_hash or _DUMMY_HASH, normalise(password))
            and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)
