"""The authentication contract, over HTTP, on every configured database."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import jwt
import pyotp
import pytest
from fastapi import FastAPI

from aiqleads.kit.clock import FrozenClock
from tests.conftest import PASSWORD, TEST_SECRET, Api, bearer

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def problem(response: object) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


async def test_register_answers_the_same_for_new_and_taken_emails(api: Api) -> None:
    first = await api.register("sam@agents.example.com")
    await api.signup("taken@agents.example.com")
    second = await api.register("Taken@Agents.example.com")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert [m.kind for m in await api.emails_to("sam@agents.example.com")] == ["verify_email"]
    kinds = [m.kind for m in await api.emails_to("taken@agents.example.com")]
    assert kinds == ["verify_email", "registration_attempt"]


async def test_weak_passwords_are_refused_with_the_reason(api: Api) -> None:
    common = await api.register("a@agents.example.com", password="password123")
    assert common.status_code == 422
    assert problem(common)["code"] == "weak_password"
    assert "common" in str(problem(common)["detail"])
    short = await api.register("a@agents.example.com", password="x7#kq2")
    assert problem(short)["code"] == "weak_password"
    assert "8 characters" in str(problem(short)["detail"])


async def test_long_passphrase_works_without_truncation(api: Api) -> None:
    long_password = "correct horse battery staple " * 3 + "x" * 13  # 100 characters
    assert len(long_password) == 100
    await api.signup("long@agents.example.com", password=long_password)
    # The same password minus its last character must not work: nothing is truncated.
    assert (await api.login("long@agents.example.com", long_password[:-1])).status_code == 401


async def test_invalid_email_is_a_clear_422(api: Api) -> None:
    response = await api.register("not-an-email")
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_email"


async def test_unverified_account_cannot_log_in(api: Api) -> None:
    await api.register("new@agents.example.com")
    response = await api.login("new@agents.example.com")
    assert response.status_code == 403
    assert problem(response)["code"] == "email_unverified"


async def test_verification_token_is_single_use(api: Api) -> None:
    await api.register("once@agents.example.com")
    token = await api.token_from_mail("once@agents.example.com", "verify_email")
    assert (
        await api.client.post(
            "/api/v1/auth/verify-email", json={"token": token, "password": PASSWORD}
        )
    ).status_code == 200
    again = await api.client.post(
        "/api/v1/auth/verify-email", json={"token": token, "password": PASSWORD}
    )
    assert again.status_code == 400
    assert problem(again)["code"] == "invalid_token"


async def test_login_returns_a_bearer_pair_that_opens_the_profile(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    response = await api.login("PAT@agents.example.com ")
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = await api.client.get(ME, headers=account.auth)
    assert me.status_code == 200
    assert me.json()["email"] == "pat@agents.example.com"
    assert me.json()["role"] == "agent"


async def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    await api.signup("pat@agents.example.com")
    wrong = await api.login("pat@agents.example.com", "not the password at all")
    unknown = await api.login("nobody@agents.example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert problem(wrong)["code"] == problem(unknown)["code"] == "invalid_credentials"
    assert problem(wrong)["detail"] == problem(unknown)["detail"]


@pytest.mark.parametrize("known", [True, False], ids=["known-email", "unknown-email"])
async def test_lockout_after_max_failures_with_growing_delay(
    api: Api, clock: FrozenClock, known: bool
) -> None:
    email = "pat@agents.example.com"
    if known:
        await api.signup(email)
    for _ in range(5):
        assert (await api.login(email, "wrong password!")).status_code == 401
    locked = await api.login(email, PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert problem(locked)["code"] == "login_locked"
    assert locked.headers["Retry-After"] == "60"
    assert (await api.login(email.upper(), PASSWORD)).status_code == 429  # normalised e-mail

    clock.advance(timedelta(seconds=61))
    assert (await api.login(email, "wrong again!!")).status_code == 401
    relocked = await api.login(email, PASSWORD)
    assert relocked.status_code == 429
    assert relocked.headers["Retry-After"] == "120"  # the delay grows

    clock.advance(timedelta(seconds=121))
    response = await api.login(email, PASSWORD)
    if known:
        assert response.status_code == 200
        # success resets the count: four new failures do not lock
        for _ in range(4):
            assert (await api.login(email, "wrong password!")).status_code == 401
        assert (await api.login(email, PASSWORD)).status_code == 200
    else:
        assert response.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    first = await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token

    reuse = await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert reuse.status_code == 401
    assert problem(reuse)["code"] == "token_reused"
    # the thief's (or the owner's) newer token is dead too
    after = await api.client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401


async def test_other_sessions_survive_a_family_revocation(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    other = (await api.login(account.email)).json()
    await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})  # reuse
    assert (
        await api.client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_logout_ends_the_refresh_token(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    out = await api.client.post(
        "/api/v1/auth/logout", json={"refresh_token": account.refresh_token}
    )
    assert out.status_code == 204
    again = await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert again.status_code == 401


async def test_refresh_token_is_not_an_access_token(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    response = await api.client.get(ME, headers=bearer(account.refresh_token))
    assert response.status_code == 401
    assert problem(response)["code"] == "invalid_token"


def _forge(
    claims: dict[str, object], key: str = TEST_SECRET, alg: str = "HS256", typ: str = "at+jwt"
) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": typ})


async def _claims(api: Api) -> dict[str, object]:
    account = await api.signup("pat@agents.example.com")
    claims: dict[str, object] = jwt.decode(
        account.access_token,
        TEST_SECRET,
        algorithms=["HS256"],
        audience="aiqleads-api",
        options={"verify_exp": False},  # issued on the test's frozen clock
    )
    return claims


async def test_forged_and_tampered_access_tokens_are_refused(api: Api, clock: FrozenClock) -> None:
    claims = await _claims(api)
    assert (await api.client.get(ME, headers=bearer(_forge(claims)))).status_code == 200  # control

    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"at+jwt"}').decode()
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    cases = {
        "alg=none": f"{header}.{payload}.",
        "wrong aud": _forge({**claims, "aud": "someone-else"}),
        "wrong iss": _forge({**claims, "iss": "evil"}),
        "wrong key": _forge(claims, key="another-secret-that-is-long-enough-000000"),
        "refresh typ": _forge({**claims, "typ": "refresh"}),
        "id token header": _forge(claims, typ="JWT"),
        "expired": _forge({**claims, "exp": int(clock.now().timestamp()) - 1}),
        "no exp": _forge({k: v for k, v in claims.items() if k != "exp"}),
        "garbage": "not.a.jwt",
    }
    for name, token in cases.items():
        response = await api.client.get(ME, headers=bearer(token))
        assert response.status_code == 401, name
        assert problem(response)["code"] == "invalid_token", name


async def test_access_token_expires_on_the_clock(api: Api, clock: FrozenClock) -> None:
    account = await api.signup("pat@agents.example.com")
    clock.advance(timedelta(seconds=899))
    assert (await api.client.get(ME, headers=account.auth)).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert (await api.client.get(ME, headers=account.auth)).status_code == 401


async def test_no_token_is_401_with_www_authenticate(api: Api) -> None:
    response = await api.client.get(ME)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_password_reset_sets_a_new_password_and_signs_everyone_out(api: Api) -> None:
    account = await api.signup("pat@agents.example.com")
    request = await api.client.post(
        "/api/v1/auth/password-reset/request", json={"email": account.email}
    )
    unknown = await api.client.post(
        "/api/v1/auth/password-reset/request", json={"email": "ghost@agents.example.com"}
    )
    assert request.status_code == unknown.status_code == 202
    assert request.json() == unknown.json()
    assert await api.emails_to("ghost@agents.example.com") == []

    token = await api.token_from_mail(account.email, "reset_password")
    weak = await api.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "qwertyuiop"}
    )
    assert problem(weak)["code"] == "weak_password"
    new_password = "a brand new passphrase"
    done = await api.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    assert done.status_code == 204
    assert (await api.client.get(ME, headers=account.auth)).status_code == 401
    assert (
        await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    ).status_code == 401
    assert (await api.login(account.email)).status_code == 401
    assert (await api.login(account.email, new_password)).status_code == 200
    reused = await api.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "yet another passphrase"},
    )
    assert problem(reused)["code"] == "invalid_token"


async def test_responses_with_tokens_keys_or_secrets_are_not_cacheable(api: Api) -> None:
    """RFC 6749 5.1: a response carrying a token says Cache-Control: no-store."""
    account = await api.signup("cache@agents.example.com")
    login = await api.login(account.email)
    assert login.status_code == 200
    refreshed = await api.client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200
    key = await api.client.post(
        "/api/v1/api-keys",
        json={"name": "crm", "scopes": ["account:read"]},
        headers=account.auth,
    )
    assert key.status_code == 201
    setup = await api.client.post("/api/v1/auth/2fa/setup", headers=account.auth)
    assert setup.status_code == 200
    for response in (login, refreshed, key, setup):
        assert response.headers["cache-control"] == "no-store", response.request.url
        assert response.headers["pragma"] == "no-cache", response.request.url


async def _enable_2fa(api: Api, clock: FrozenClock) -> tuple[str, str, list[str]]:
    account = await api.signup("pat@agents.example.com")
    setup = await api.client.post("/api/v1/auth/2fa/setup", headers=account.auth)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/AIQLeads:")
    code = pyotp.TOTP(secret).at(clock.now())
    enabled = await api.client.post(
        "/api/v1/auth/2fa/enable", json={"code": code}, headers=account.auth
    )
    assert enabled.status_code == 200
    codes = enabled.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    return account.email, secret, codes


async def test_totp_is_required_and_a_code_works_once(api: Api, clock: FrozenClock) -> None:
    email, secret, _ = await _enable_2fa(api, clock)
    missing = await api.login(email)
    assert missing.status_code == 401
    assert problem(missing)["code"] == "totp_required"

    clock.advance(timedelta(seconds=30))
    code = pyotp.TOTP(secret).at(clock.now())
    assert (await api.login(email, totp_code=code)).status_code == 200
    replay = await api.login(email, totp_code=code)
    assert replay.status_code == 401
    assert problem(replay)["code"] == "invalid_totp"
    # a code from the previous step is also spent once a later one was used
    previous = pyotp.TOTP(secret).at(clock.now() - timedelta(seconds=30))
    assert (await api.login(email, totp_code=previous)).status_code == 401


FULL_WIDTH = str.maketrans(
    "0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"
)


async def test_a_totp_code_in_full_width_digits_is_a_wrong_code(
    api: Api, clock: FrozenClock
) -> None:
    """An IME may type "１２３４５６": str.isdigit() says yes, but it is no code."""
    account = await api.signup("ime@agents.example.com")
    setup = await api.client.post("/api/v1/auth/2fa/setup", headers=account.auth)
    secret = setup.json()["secret"]
    full_width = pyotp.TOTP(secret).at(clock.now()).translate(FULL_WIDTH)
    enable = await api.client.post(
        "/api/v1/auth/2fa/enable", json={"code": full_width}, headers=account.auth
    )
    assert enable.status_code == 422
    assert problem(enable)["code"] == "invalid_totp"

    email, secret, _ = await _enable_2fa(api, clock)
    clock.advance(timedelta(seconds=30))
    full_width = pyotp.TOTP(secret).at(clock.now()).translate(FULL_WIDTH)
    login = await api.login(email, totp_code=full_width)
    assert login.status_code == 401
    assert problem(login)["code"] == "invalid_totp"
    auth = bearer(
        (await api.login(email, totp_code=pyotp.TOTP(secret).at(clock.now()))).json()[
            "access_token"
        ]
    )
    clock.advance(timedelta(seconds=30))
    full_width = pyotp.TOTP(secret).at(clock.now()).translate(FULL_WIDTH)
    disable = await api.client.post(
        "/api/v1/auth/2fa/disable", json={"code": full_width}, headers=auth
    )
    assert disable.status_code == 422
    assert problem(disable)["code"] == "invalid_totp"


async def test_totp_window_is_one_step_either_side(api: Api, clock: FrozenClock) -> None:
    email, secret, _ = await _enable_2fa(api, clock)
    clock.advance(timedelta(minutes=5))
    totp = pyotp.TOTP(secret)
    assert (
        await api.login(email, totp_code=totp.at(clock.now() - timedelta(seconds=90)))
    ).status_code == 401
    assert (
        await api.login(email, totp_code=totp.at(clock.now() + timedelta(seconds=30)))
    ).status_code == 200


async def test_recovery_codes_are_one_time(api: Api, clock: FrozenClock) -> None:
    email, _, codes = await _enable_2fa(api, clock)
    assert (await api.login(email, totp_code=codes[0].upper())).status_code == 200
    assert (await api.login(email, totp_code=codes[0])).status_code == 401


async def test_disable_2fa_needs_a_valid_code(api: Api, clock: FrozenClock) -> None:
    email, secret, codes = await _enable_2fa(api, clock)
    clock.advance(timedelta(seconds=30))
    tokens = (await api.login(email, totp_code=pyotp.TOTP(secret).at(clock.now()))).json()
    auth = bearer(tokens["access_token"])
    bad = await api.client.post("/api/v1/auth/2fa/disable", json={"code": "000000"}, headers=auth)
    assert bad.status_code == 422
    ok = await api.client.post("/api/v1/auth/2fa/disable", json={"code": codes[1]}, headers=auth)
    assert ok.status_code == 200
    assert ok.json() == {"enabled": False}
    assert (await api.login(email)).status_code == 200


async def test_wrong_totp_codes_count_towards_lockout(api: Api, clock: FrozenClock) -> None:
    email, _, _ = await _enable_2fa(api, clock)
    for _ in range(5):
        assert (await api.login(email, totp_code="123456")).status_code == 401
    assert (await api.login(email, totp_code="123456")).status_code == 429


async def test_concurrent_failures_are_all_counted(api: Api) -> None:
    """A burst of parallel guesses cannot slip past the lockout by racing its counter."""
    email = "burst@agents.example.com"
    responses = await asyncio.gather(*(api.login(email, f"guess number {i}") for i in range(8)))
    # Sign-ins to one address take turns: five guesses are checked, then the lock holds.
    assert sorted(r.status_code for r in responses) == [401] * 5 + [429] * 3
    assert (await api.login(email, PASSWORD)).status_code == 429


async def test_wrong_codes_to_turn_2fa_off_count_towards_lockout(
    api: Api, clock: FrozenClock
) -> None:
    email, secret, codes = await _enable_2fa(api, clock)
    clock.advance(timedelta(seconds=30))
    tokens = (await api.login(email, totp_code=pyotp.TOTP(secret).at(clock.now()))).json()
    auth = bearer(tokens["access_token"])
    for _ in range(5):
        wrong = await api.client.post(
            "/api/v1/auth/2fa/disable", json={"code": "000000"}, headers=auth
        )
        assert wrong.status_code == 422
    locked = await api.client.post(
        "/api/v1/auth/2fa/disable", json={"code": codes[0]}, headers=auth
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert (await api.login(email, totp_code=codes[1])).status_code == 429


@pytest.mark.parametrize("owner_first", [True, False], ids=["owner first", "stranger first"])
async def test_a_verification_link_needs_the_password_it_was_registered_with(
    api: Api, owner_first: bool
) -> None:
    """Two registrations of one unverified address, the owner's and a stranger's, in either
    order, and two mails that read alike: the stranger's link, followed by the owner with
    their own password, is refused and changes nothing; the owner's own link verifies the
    account with the owner's password; the stranger's password opens nothing."""
    email = "owner@agents.example.com"
    stranger = "a stranger's passphrase"
    registrations = [(PASSWORD, "The Owner"), (stranger, "The Owner")]
    for password, name in registrations if owner_first else registrations[::-1]:
        assert (await api.register(email, password, name=name)).status_code == 202
    links = [m.body_text for m in await api.emails_to(email, "verify_email")]
    tokens = [re.search(r"token=([A-Za-z0-9_-]+)", body).group(1) for body in links]  # type: ignore[union-attr]
    owners, strangers = tokens if owner_first else tokens[::-1]
    verify = "/api/v1/auth/verify-email"
    refused = await api.client.post(verify, json={"token": strangers, "password": PASSWORD})
    assert refused.status_code == 400
    assert refused.json()["code"] == "password_mismatch"
    assert (await api.login(email, PASSWORD)).status_code in (401, 403)  # nobody is in yet
    verified = await api.client.post(verify, json={"token": owners, "password": PASSWORD})
    assert verified.status_code == 200
    assert (await api.login(email, stranger)).status_code == 401
    assert (await api.login(email, PASSWORD)).status_code == 200
    late = await api.client.post(verify, json={"token": strangers, "password": stranger})
    assert late.status_code == 200  # verified already: the stranger's link changes nothing
    assert (await api.login(email, stranger)).status_code == 401


async def test_a_password_reset_revokes_every_api_key(api: Api) -> None:
    account = await api.signup("keys@agents.example.com")
    created = await api.client.post(
        "/api/v1/api-keys",
        json={"name": "someone's script", "scopes": ["account:read", "leads:read"]},
        headers=account.auth,
    )
    assert created.status_code == 201, created.text
    key = bearer(created.json()["key"])
    assert (await api.client.get(ME, headers=key)).status_code == 200
    await api.client.post("/api/v1/auth/password-reset/request", json={"email": account.email})
    token = await api.token_from_mail(account.email, "reset_password")
    done = await api.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "a brand new passphrase"},
    )
    assert done.status_code == 204
    refused = await api.client.get(ME, headers=key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"


async def test_blank_names_are_refused(api: Api) -> None:
    response = await api.register("blank@agents.example.com", name="   ")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_strangers_cannot_flood_an_inbox_nor_keep_the_owners_reset_link_away(
    api: Api, app: FastAPI, clock: FrozenClock
) -> None:
    account = await api.signup("flooded@agents.example.com")
    for _ in range(8):
        asked = await api.client.post(
            "/api/v1/auth/password-reset/request", json={"email": account.email}
        )
        assert asked.status_code == 202  # the same answer throughout
        assert (await api.register(account.email)).status_code == 202
    assert len(await api.emails_to(account.email, "reset_password")) == 5
    assert len(await api.emails_to(account.email, "registration_attempt")) == 5
    # The owner, from their own address, still gets their link.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as owner:
        await owner.post("/api/v1/auth/password-reset/request", json={"email": account.email})
    assert len(await api.emails_to(account.email, "reset_password")) == 6
    clock.advance(timedelta(hours=1))
    await api.client.post("/api/v1/auth/password-reset/request", json={"email": account.email})
    assert len(await api.emails_to(account.email, "reset_password")) == 7
