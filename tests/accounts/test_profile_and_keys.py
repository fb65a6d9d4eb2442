"""Profile, API keys, and one user never reaching another's data."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta

from aiqleads.kit.clock import FrozenClock
from tests.conftest import Api, bearer

ME = "/api/v1/users/me"
KEYS = "/api/v1/api-keys"


async def test_profile_update_normalises_and_validates(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    response = await api.client.patch(
        ME,
        headers=pat.auth,
        json={
            "name": "Pat Q. Agent",
            "phone": "+1 (702) 555-0143",
            "preferred_markets": ["las-vegas", "austin"],
            "time_zone": "America/Phoenix",
            "notification_preferences": {"email": False, "hold_expiring": True},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["phone"] == "+17025550143"
    assert body["preferred_markets"] == ["las-vegas", "austin"]
    assert body["time_zone"] == "America/Phoenix"
    assert body["notification_preferences"]["email"] is False
    assert body["notification_preferences"]["in_app"] is True
    assert (await api.client.get(ME, headers=pat.auth)).json() == body


async def test_profile_rejects_bad_values_with_codes(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    cases = [
        ({"phone": "702 555 0143"}, "invalid_phone"),  # no country code
        ({"phone": "+1 702 555"}, "invalid_phone"),
        ({"preferred_markets": ["las-vegas", "atlantis"]}, "unknown_market"),
        ({"time_zone": "Mars/Olympus"}, "invalid_time_zone"),
        ({"notification_preferences": {"carrier_pigeon": True}}, "validation_error"),
        ({"role": "admin"}, "validation_error"),  # no self-promotion
    ]
    for body, code in cases:
        response = await api.client.patch(ME, headers=pat.auth, json=body)
        assert response.status_code == 422, body
        assert response.json()["code"] == code, body
    assert (await api.client.get(ME, headers=pat.auth)).json()["role"] == "agent"


async def test_api_key_is_shown_once_scoped_and_revocable(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    created = await api.client.post(
        KEYS, headers=pat.auth, json={"name": "CRM sync", "scopes": ["account:read"]}
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("aiq_")
    assert created.json()["prefix"] == key[:12]

    listed = (await api.client.get(KEYS, headers=pat.auth)).json()["items"]
    assert [k["name"] for k in listed] == ["CRM sync"]
    assert "key" not in listed[0]

    assert (await api.client.get(ME, headers=bearer(key))).json()["email"] == pat.email
    write = await api.client.patch(ME, headers=bearer(key), json={"name": "Hacked"})
    assert write.status_code == 403
    assert write.json()["code"] == "insufficient_scope"
    # an API key cannot mint more keys or switch on 2FA
    assert (
        await api.client.post(
            KEYS, headers=bearer(key), json={"name": "x", "scopes": ["account:read"]}
        )
    ).status_code == 403
    await api.runtime.jobs.wait_idle()  # key use is recorded after the response
    listed = (await api.client.get(KEYS, headers=pat.auth)).json()["items"]
    assert listed[0]["last_used_at"] is not None

    assert (
        await api.client.delete(f"{KEYS}/{created.json()['id']}", headers=pat.auth)
    ).status_code == 204
    revoked = await api.client.get(ME, headers=bearer(key))
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "invalid_api_key"
    assert (await api.client.get(KEYS, headers=pat.auth)).json()["items"] == []


async def test_agents_cannot_grant_admin_scopes(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    response = await api.client.post(
        KEYS, headers=pat.auth, json={"name": "x", "scopes": ["admin:read"]}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "scope_not_allowed"
    unknown = await api.client.post(KEYS, headers=pat.auth, json={"name": "x", "scopes": ["root"]})
    assert unknown.status_code == 422


async def test_a_user_cannot_see_or_revoke_another_users_key(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    eve = await api.signup("eve@agents.example.com")
    key = (
        await api.client.post(
            KEYS, headers=pat.auth, json={"name": "mine", "scopes": ["account:read"]}
        )
    ).json()

    assert (await api.client.get(KEYS, headers=eve.auth)).json()["items"] == []
    stolen = await api.client.delete(f"{KEYS}/{key['id']}", headers=eve.auth)
    assert stolen.status_code == 404
    assert (await api.client.get(ME, headers=bearer(key["key"]))).status_code == 200  # still works


async def test_users_me_is_always_the_caller(api: Api) -> None:
    pat = await api.signup("pat@agents.example.com")
    eve = await api.signup("eve@agents.example.com")
    await api.client.patch(ME, headers=eve.auth, json={"name": "Eve"})
    assert (await api.client.get(ME, headers=pat.auth)).json()["name"] == "Pat Agent"
    # There is no route that takes another user's id.
    pat_id = (await api.client.get(ME, headers=pat.auth)).json()["id"]
    assert (await api.client.get(f"/api/v1/users/{pat_id}", headers=eve.auth)).status_code in (
        404,
        405,
    )


async def test_admin_reads_the_outbox_and_agents_cannot(api: Api, clock: FrozenClock) -> None:
    pat = await api.signup("pat@agents.example.com")
    forbidden = await api.client.get("/api/v1/admin/emails", headers=pat.auth)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"

    ops = await api.admin()
    clock.advance(timedelta(seconds=1))
    await api.register("later@agents.example.com")
    page = (await api.client.get("/api/v1/admin/emails?limit=1", headers=ops.auth)).json()
    assert page["items"][0]["to_address"] == "later@agents.example.com"  # newest first
    assert "verify-email?token=" in page["items"][0]["body_text"]
    assert page["items"][0]["status"] == "pending"
    second = (
        await api.client.get(
            f"/api/v1/admin/emails?limit=1&cursor={page['next_cursor']}", headers=ops.auth
        )
    ).json()
    assert second["items"][0]["to_address"] == "pat@agents.example.com"
    assert second["next_cursor"] is None
    bad = await api.client.get("/api/v1/admin/emails?cursor=@@@", headers=ops.auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    # Well formed, but its time lies before the first instant in UTC.
    edge = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}".encode())
    beyond = await api.client.get(
        "/api/v1/admin/emails", params={"cursor": edge.decode()}, headers=ops.auth
    )
    assert beyond.status_code == 400
    assert beyond.json()["code"] == "invalid_cursor"


async def test_admin_api_key_with_admin_scope_reads_the_outbox(api: Api) -> None:
    ops = await api.admin()
    key = (
        await api.client.post(
            KEYS, headers=ops.auth, json={"name": "ops", "scopes": ["admin:read"]}
        )
    ).json()["key"]
    assert (await api.client.get("/api/v1/admin/emails", headers=bearer(key))).status_code == 200
    narrow = (
        await api.client.post(
            KEYS, headers=ops.auth, json={"name": "me", "scopes": ["account:read"]}
        )
    ).json()["key"]
    assert (await api.client.get("/api/v1/admin/emails", headers=bearer(narrow))).status_code == 403


async def test_a_write_key_can_write_on_its_first_use(api: Api) -> None:
    """A key's first use being a write must not wait on its own usage bookkeeping."""
    pat = await api.signup("pat@agents.example.com")
    body = {"name": "sync", "scopes": ["account:read", "account:write"]}
    key = (await api.client.post(KEYS, headers=pat.auth, json=body)).json()["key"]
    response = await asyncio.wait_for(
        api.client.patch(ME, headers=bearer(key), json={"name": "Pat via CRM"}), timeout=5
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Pat via CRM"
