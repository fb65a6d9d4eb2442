"""TOTP (RFC 6238) with replay protection, secrets encrypted at rest, recovery codes."""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ISSUER = "AIQLeads"
STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _fernet(secret: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aiqleads-totp").derive(
        secret
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(service_secret: bytes, totp_secret: str) -> str:
    return _fernet(service_secret).encrypt(totp_secret.encode()).decode()


def decrypt_secret(service_secret: bytes, stored: str) -> str:
    try:
        return _fernet(service_secret).decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the TOTP secret cannot be decrypted with this service secret") from exc


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(totp_secret: str, account: str) -> str:
    return pyotp.TOTP(totp_secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(totp_secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step (current +/- 1) whose code this is, unless that step was already used."""
    code = code.strip().replace(" ", "")
    # isascii too: "１２３４５６" (full-width digits, from an IME) is isdigit() but no code, and
    # comparing a non-ASCII str with hmac.compare_digest raises TypeError.
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(totp_secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                return None  # replay of a used code, or of one older than it
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7pq-2mzx-h4` (50 bits each), shown once."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return codes


def normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "").replace("-", "")
