"""The password policy (NIST SP 800-63B) and hashing parameters (OWASP argon2id)."""

from __future__ import annotations

from argon2 import extract_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from aiqleads.accounts import passwords


def test_hashes_are_argon2id_at_or_above_owasp_minimum() -> None:
    params = extract_parameters(passwords.hash_password("a fine passphrase"))
    assert params.type.name == "ID"
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism >= 1


def test_the_shipped_list_has_the_most_common_passwords() -> None:
    common = passwords.common_passwords()
    assert len(common) >= 3000
    for pw in ("password", "12345678", "qwertyuiop", "iloveyou", "sunshine1"):
        assert passwords.weakness(pw) is not None, pw


def test_no_composition_rules() -> None:
    assert passwords.weakness("plain lowercase words") is None
    assert passwords.weakness("ünïcødé pässwörd") is None


def test_context_words_are_refused() -> None:
    assert passwords.weakness("pat.agent@x.example.com", "pat.agent@x.example.com") is not None
    assert passwords.weakness("AIQLeads") is not None


def test_unicode_is_normalised_before_hashing() -> None:
    composed, decomposed = "caf\u00e9 au lait!", "cafe\u0301 au lait!"
    assert passwords.verify_password(passwords.hash_password(composed), decomposed)


@settings(max_examples=20, deadline=None)
@given(st.text(min_size=8, max_size=120).filter(lambda s: len(s.strip()) >= 8))
def test_any_long_password_round_trips_and_a_changed_one_fails(password: str) -> None:
    hashed = passwords.hash_password(password)
    assert passwords.verify_password(hashed, password)
    assert not passwords.verify_password(hashed, password + "x")
