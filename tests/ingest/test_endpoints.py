"""Webhooks, web-form intake and operators' ingestion and lead endpoints, over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiqleads.ingest.connectors.base import RawRecord
from aiqleads.ingest.models import SourceRecord
from aiqleads.ingest.service import run_source
from aiqleads.ingest.sources import SourceCatalog, SourceConfig
from aiqleads.leads.models import Lead
from aiqleads.quality.models import LeadReview
from aiqleads.runtime import Runtime
from aiqleads.settings import Settings
from tests.conftest import Api
from tests.ingest.factories import CONSENT, fake_lead, lookalike, seller
from tests.ingest.loopback import serve

APP_SECRET = "fb-app-secret-for-tests"
VERIFY = "fb-verify-token"
LI_SECRET = "li-client-secret"
FORM_KEY = "web-form-key-0123456789"

GRAPH_LEADS: dict[str, dict[str, Any]] = {
    "900001": {
        "id": "900001",
        "created_time": "2026-03-01T17:55:10+0000",
        "ad_id": "238",
        "form_id": "5551",
        "field_data": [
            {"name": "full_name", "values": ["Ana Lopez"]},
            {"name": "phone_number", "values": ["+1 480 555 0101"]},
            {"name": "email", "values": ["Ana.Lopez@Outlook.com"]},
            {"name": "street_address", "values": ["2200 E Camelback Rd"]},
            {"name": "city", "values": ["Phoenix"]},
            {"name": "state", "values": ["AZ"]},
            {"name": "zip_code", "values": ["85016"]},
        ],
    }
}
GRAPH_CALLS: list[str] = []


async def graph_lead(request: Request) -> Response:
    GRAPH_CALLS.append(request.url.path)
    # Errors as the Graph API writes them: an object, its type and its numeric code.
    if request.query_params.get("access_token") != "graph-token":
        error = {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}
        return JSONResponse({"error": error}, status_code=400)
    lead_id = request.path_params["lead_id"]
    if lead_id == "500500":
        return JSONResponse({"error": {"message": "An unknown error occurred", "code": 1}}, 500)
    lead = GRAPH_LEADS.get(lead_id)
    if lead is None:
        error = {
            "message": f"Unsupported get request. Object with ID '{lead_id}' does not exist",
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
        }
        return JSONResponse({"error": error}, status_code=400)
    return JSONResponse(lead)


@pytest.fixture(scope="module")
def graph_url() -> Iterator[str]:
    with serve(Starlette(routes=[Route("/v21.0/{lead_id}", graph_lead)])) as url:
        yield f"{url}/v21.0"


@pytest.fixture
def settings(database_url: str, graph_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from tests.conftest import TEST_SECRET

    monkeypatch.setenv("AIQLEADS_WEB_FORM_KEY", FORM_KEY)
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        log_level="WARNING",
        facebook_app_secret=APP_SECRET,
        facebook_verify_token=VERIFY,
        facebook_access_token="graph-token",
        facebook_graph_url=graph_url,
        linkedin_client_secret=LI_SECRET,
    )


def fb_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def leadgen(*lead_ids: str) -> bytes:
    changes = [
        {"field": "leadgen", "value": {"leadgen_id": i, "form_id": "5551", "page_id": "77"}}
        for i in lead_ids
    ]
    return json.dumps(
        {"object": "page", "entry": [{"id": "77", "time": 1, "changes": changes}]}
    ).encode()


async def count_leads(runtime: Runtime) -> int:
    async with runtime.transaction(write=False) as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0)


async def test_facebook_handshake(client: httpx.AsyncClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    response = await client.get("/api/v1/webhooks/facebook", params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    params["hub.verify_token"] = "guess"
    response = await client.get("/api/v1/webhooks/facebook", params=params)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_facebook_leadgen_is_fetched_from_graph_and_ingested(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = leadgen("900001")
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=body,
        headers={"X-Hub-Signature-256": fb_signature(body), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 1
    async with runtime.transaction(write=False) as session:
        lead = (await session.scalars(sa.select(Lead))).one()
    assert (lead.first_name, lead.last_name, lead.phone) == ("Ana", "Lopez", "+14805550101")
    assert lead.market == "phoenix"
    assert lead.source == "facebook-ads"
    assert lead.consent_text
    assert lead.consent_captured_at is not None
    assert lead.attributes["form_id"] == "5551"


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, "sha1=abc", fb_signature(leadgen("900001"), "wrong-secret")],
)
async def test_facebook_refuses_unsigned_or_forged_bodies(
    client: httpx.AsyncClient, runtime: Runtime, signature: str | None
) -> None:
    headers = {"X-Hub-Signature-256": signature} if signature else {}
    response = await client.post(
        "/api/v1/webhooks/facebook", content=leadgen("900001"), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert await count_leads(runtime) == 0


async def test_facebook_signature_covers_the_exact_bytes(client: httpx.AsyncClient) -> None:
    body = leadgen("900001")
    reserialised = json.dumps(json.loads(body), indent=2).encode()
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=reserialised,
        headers={"X-Hub-Signature-256": fb_signature(body)},
    )
    assert response.status_code == 401


async def test_facebook_graph_failure_is_a_502_so_meta_retries(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = leadgen("900001", "500500")
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=body,
        headers={"X-Hub-Signature-256": fb_signature(body)},
    )
    assert response.status_code == 502
    assert response.json()["code"] == "graph_unavailable"
    assert await count_leads(runtime) == 0  # all of it again when Meta retries


async def test_facebook_token_refused_is_a_502_so_meta_retries(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph refusing our token is ours to mend; until then Meta keeps the leads."""
    monkeypatch.setattr(runtime.settings, "facebook_access_token", SecretStr("expired"))
    body = leadgen("900001")
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=body,
        headers={"X-Hub-Signature-256": fb_signature(body)},
    )
    assert response.status_code == 502
    assert response.json()["code"] == "graph_error"
    assert await count_leads(runtime) == 0


async def test_a_lead_graph_no_longer_has_fails_alone(
    api: Api, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A lead deleted before we fetched it can never be fetched: retrying the notification
    would hold back the good leads in it until Meta gives up on all of them."""
    body = leadgen("404404", "900001")
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=body,
        headers={"X-Hub-Signature-256": fb_signature(body)},
    )
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 2
    assert await count_leads(runtime) == 1
    admin = await api.admin()
    run = (
        await client.get(
            f"/api/v1/admin/ingestion-runs/{response.json()['run_id']}", headers=admin.auth
        )
    ).json()
    assert run["counts"]["failed"] == 1
    (rejected,) = run["rejected"]
    assert rejected["source_key"] == "404404"
    assert [p["code"] for p in rejected["problems"]] == ["graph_lead_missing"]

    # No lead of a notification readable looks like our token, not deleted leads: retried.
    alone = leadgen("404405")
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=alone,
        headers={"X-Hub-Signature-256": fb_signature(alone)},
    )
    assert response.status_code == 502
    assert response.json()["code"] == "graph_error"


async def test_malformed_and_huge_webhook_bodies_get_clear_errors(
    client: httpx.AsyncClient,
) -> None:
    body = b"{not json"
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=body,
        headers={"X-Hub-Signature-256": fb_signature(body)},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    huge = b"[" + b"1," * 600_000 + b"1]"
    response = await client.post(
        "/api/v1/webhooks/facebook",
        content=huge,
        headers={"X-Hub-Signature-256": fb_signature(huge)},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def linkedin_response(lead_id: str = "li-1") -> dict[str, Any]:
    answers = [
        ("1", "Dana"),
        ("2", "Whitfield"),
        ("3", "dana.w@icloud.com"),
        ("4", "(512) 555-0123"),
        ("5", "Austin"),
        ("6", "TX"),
        ("7", "78704"),
    ]
    return {
        "id": lead_id,
        "submittedAt": 1772400000000,
        "leadType": "SPONSORED",
        "versionedLeadGenFormUrn": "urn:li:versionedLeadGenForm:(urn:li:leadGenForm:4242,1)",
        "formResponse": {
            "answers": [
                {"questionId": int(q), "answerDetails": {"textQuestionAnswer": {"answer": a}}}
                for q, a in answers
            ],
            "consentResponses": [{"consentId": 1, "accepted": True}],
        },
    }


async def test_linkedin_challenge_and_signed_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.get("/api/v1/webhooks/linkedin", params={"challengeCode": "abc123"})
    expected = hmac.new(LI_SECRET.encode(), b"abc123", hashlib.sha256).hexdigest()
    assert response.json() == {"challengeCode": "abc123", "challengeResponse": expected}

    body = json.dumps(linkedin_response()).encode()
    signature = hmac.new(LI_SECRET.encode(), body, hashlib.sha256).hexdigest()
    forged = await client.post(
        "/api/v1/webhooks/linkedin", content=body, headers={"X-LI-Signature": "0" * 64}
    )
    assert forged.status_code == 401
    response = await client.post(
        "/api/v1/webhooks/linkedin", content=body, headers={"X-LI-Signature": signature}
    )
    assert response.status_code == 200, response.text
    async with runtime.transaction(write=False) as session:
        lead = (await session.scalars(sa.select(Lead))).one()
    assert (lead.kind, lead.market, lead.email) == ("buyer", "austin", "dana.w@icloud.com")
    assert lead.consent_captured_at is not None


async def test_the_linkedin_challenge_cannot_be_used_to_sign_a_webhook_body(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Anyone may call the validation endpoint, and its answer is HMAC-SHA256(secret, code): the
    # signature POST accepts for a body equal to the code. Only LinkedIn-like codes are signed.
    forged_body = '{"id":"li-1","formResponse":{"answers":[]}}'
    challenge = await client.get("/api/v1/webhooks/linkedin", params={"challengeCode": forged_body})
    assert challenge.status_code == 422
    assert "challengeResponse" not in challenge.json()
    signature = hmac.new(LI_SECRET.encode(), forged_body.encode(), hashlib.sha256).hexdigest()
    assert signature not in challenge.text
    uuid_like = await client.get(
        "/api/v1/webhooks/linkedin",
        params={"challengeCode": "7c1b2a9e-3f4d-4c8e-9a1b-2d3e4f5a6b7c"},
    )
    assert uuid_like.status_code == 200
    assert await count_leads(runtime) == 0


@pytest.mark.parametrize(
    ("path", "header", "prefix"),
    [
        ("/api/v1/webhooks/linkedin", "X-LI-Signature", b"hmacsha256="),
        ("/api/v1/webhooks/facebook", "X-Hub-Signature-256", b"sha256="),
    ],
    ids=["linkedin", "facebook"],
)
async def test_a_webhook_signature_with_a_non_ascii_byte_is_401(
    client: httpx.AsyncClient, runtime: Runtime, path: str, header: str, prefix: bytes
) -> None:
    body = b'{"id": "li-1", "entry": []}'
    # Starlette decodes header bytes as latin-1: b"\xe9" arrives as "\xe9" (e acute).
    response = await client.post(path, content=body, headers={header: prefix + b"\xe9" * 64})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_signature"
    assert await count_leads(runtime) == 0


def intake_body(**overrides: Any) -> dict[str, Any]:
    payload = dict(seller("x").payload)
    payload.pop("kind")
    payload["external_id"] = "form-submission-1"
    payload.update(overrides)
    return payload


async def test_web_form_intake(client: httpx.AsyncClient) -> None:
    url = "/api/v1/intake/web-form"
    response = await client.post(url, json=intake_body(), headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    response = await client.post(url, json=intake_body(), headers={"X-API-Key": FORM_KEY})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["outcome"] == "accepted"
    assert body["lead_id"]
    again = await client.post(url, json=intake_body(), headers={"X-API-Key": FORM_KEY})
    assert again.json()["outcome"] == "unchanged"

    no_consent = intake_body(external_id="2")
    no_consent.pop("consent")
    response = await client.post(url, json=no_consent, headers={"X-API-Key": FORM_KEY})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_submission"

    bad = intake_body(external_id="3", phone="12", email="nope", street=None)
    response = await client.post(url, json=bad, headers={"X-API-Key": FORM_KEY})
    assert response.status_code == 202
    assert response.json()["outcome"] == "quarantined"
    assert "missing_contact" in {p["code"] for p in response.json()["problems"]}

    response = await client.post(
        "/api/v1/intake/nowhere", json=intake_body(), headers={"X-API-Key": FORM_KEY}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"list_price": NaN}', "invalid_json"),  # Python's extension of JSON
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),  # deeper than the parser goes
        (b'{"beds": ' + b"9" * 5_000 + b"}", "invalid_json"),  # digits Python will not read
    ],
    ids=["nan", "deep", "digits"],
)
async def test_intake_bodies_that_are_not_plain_json_get_a_clear_400(
    client: httpx.AsyncClient, body: bytes, code: str
) -> None:
    response = await client.post(
        "/api/v1/intake/web-form",
        content=body,
        headers={"X-API-Key": FORM_KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_intake_consent_times_need_a_zone_on_the_calendar(
    client: httpx.AsyncClient,
) -> None:
    url = "/api/v1/intake/web-form"
    for captured_at in ("2026-03-01T18:00:00", "0001-01-01T00:30:00+01:00"):
        body = intake_body(external_id=captured_at)
        body["consent"]["captured_at"] = captured_at
        response = await client.post(url, json=body, headers={"X-API-Key": FORM_KEY})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_submission"
        (error,) = response.json()["errors"]
        assert error["loc"] == ["consent", "captured_at"]


async def test_intake_text_with_nul_characters_is_stored(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: the raw payload keeps U+FFFD in its
    place, and the cleaned fields drop it."""
    body = intake_body(external_id="nul\x00id", first_name="Ro\x00bert", note="a\x00b")
    response = await client.post(
        "/api/v1/intake/web-form", json=body, headers={"X-API-Key": FORM_KEY}
    )
    assert response.status_code == 202, response.text
    assert response.json()["outcome"] == "accepted"
    async with runtime.transaction(write=False) as session:
        record = await session.scalar(sa.select(SourceRecord))
        lead = await session.scalar(sa.select(Lead))
    assert record is not None
    assert lead is not None
    assert record.source_key == "nul\ufffdid"
    assert record.payload["note"] == "a\ufffdb"
    assert lead.first_name == "Robert"


async def test_operators_see_runs_and_replay_them(api: Api, runtime: Runtime) -> None:
    admin = await api.admin()
    agent = await api.signup("agent@aiqleads.example.com")
    source = SourceConfig(slug="demo-mls", name="MLS", type="demo", trust=0.9)
    run = await run_source(
        runtime, source, trigger="test", records=[seller("L1"), seller("BAD", street=None)]
    )
    listing = await api.client.get("/api/v1/admin/ingestion-runs", headers=admin.auth)
    assert listing.status_code == 200
    assert [r["id"] for r in listing.json()["items"]] == [str(run.id)]
    assert (
        await api.client.get("/api/v1/admin/ingestion-runs", headers=agent.auth)
    ).status_code == 403

    detail = (
        await api.client.get(f"/api/v1/admin/ingestion-runs/{run.id}", headers=admin.auth)
    ).json()
    assert detail["counts"]["accepted"] == 1
    assert detail["counts"]["quarantined"] == 1
    [rejected] = detail["rejected"]
    assert rejected["source_key"] == "BAD"
    assert rejected["payload"]["first_name"] == "Robert"
    assert "missing_address" in {p["code"] for p in rejected["problems"]}

    replay = await api.client.post(
        f"/api/v1/admin/ingestion-runs/{run.id}/replay", headers=admin.auth
    )
    assert replay.status_code == 202
    assert replay.json()["replay_of"] == str(run.id)
    await runtime.jobs.wait_idle()
    replayed = await api.client.get(
        f"/api/v1/admin/ingestion-runs/{replay.json()['id']}", headers=admin.auth
    )
    body = replayed.json()
    assert body["status"] == "succeeded"
    assert body["counts"]["unchanged"] == 1
    assert body["counts"]["quarantined"] == 1
    original = await api.client.get(f"/api/v1/admin/ingestion-runs/{run.id}", headers=admin.auth)
    assert [r["source_key"] for r in original.json()["rejected"]] == ["BAD"]
    assert await count_leads(runtime) == 1


async def test_a_held_lead_whose_record_was_replaced_cannot_be_approved_onto_sale(
    api: Api, runtime: Runtime
) -> None:
    admin = await api.admin()
    form = SourceConfig(
        slug="demo-webform", name="Form", type="demo", options={"consent_required": True}
    )
    fake = fake_lead()
    await run_source(runtime, form, trigger="test", records=[fake])
    [item] = (await api.client.get("/api/v1/admin/review-queue", headers=admin.auth)).json()[
        "items"
    ]
    unusable = RawRecord(fake.source_key, {**fake.payload, "phone": "12", "email": "x"})
    await run_source(runtime, form, trigger="test", records=[unusable])
    approved = await api.client.post(
        f"/api/v1/admin/leads/{item['id']}/review",
        json={"decision": "approve", "reason": "looks fine"},
        headers=admin.auth,
    )
    assert approved.status_code == 409
    assert approved.json()["code"] == "no_current_record"


async def test_review_queue_decisions_become_labels(api: Api, runtime: Runtime) -> None:
    admin = await api.admin()
    form = SourceConfig(
        slug="demo-webform", name="Form", type="demo", options={"consent_required": True}
    )
    fake = fake_lead()
    await run_source(runtime, form, trigger="test", records=[fake, seller("OK")])
    queue = (await api.client.get("/api/v1/admin/review-queue", headers=admin.auth)).json()
    [item] = queue["items"]
    assert item["fraud_score"] > 0.7
    assert item["fraud_reasons"]
    url = f"/api/v1/admin/leads/{item['id']}/review"
    response = await api.client.post(
        url, json={"decision": "reject", "reason": "test entry"}, headers=admin.auth
    )
    assert response.status_code == 200
    assert response.json()["status"] == "withdrawn"
    again = await api.client.post(
        url, json={"decision": "approve", "reason": "oops"}, headers=admin.auth
    )
    assert again.status_code == 409
    assert again.json()["code"] == "not_in_review"
    bad = await api.client.post(url, json={"decision": "maybe", "reason": "x"}, headers=admin.auth)
    assert bad.status_code == 422
    async with runtime.transaction(write=False) as session:
        [review] = list(await session.scalars(sa.select(LeadReview)))
        scored = await session.get(Lead, review.lead_id)
    assert review.decision == "reject"
    assert review.features["name_gibberish"] == 1.0
    # The label keeps exactly the signals the model scored, not a recomputation.
    assert scored is not None
    assert review.features == scored.fraud_features
    assert review.features["consent_missing"] == 1.0
    assert (await api.client.get("/api/v1/admin/review-queue", headers=admin.auth)).json()[
        "items"
    ] == []


async def test_lead_detail_merge_and_unmerge(api: Api, runtime: Runtime) -> None:
    admin = await api.admin()
    mls = SourceConfig(slug="demo-mls", name="MLS", type="demo", trust=0.9)
    other = lookalike()
    await run_source(runtime, mls, trigger="test", records=[seller("L1"), other])
    async with runtime.transaction(write=False) as session:
        first, second = list(await session.scalars(sa.select(Lead).order_by(Lead.first_name)))
    detail = (await api.client.get(f"/api/v1/admin/leads/{first.id}", headers=admin.auth)).json()
    assert detail["provenance"]["phone"]["source"] == "demo-mls"
    assert detail["records"][0]["payload"]["phone"]
    assert detail["possible_duplicates"][0]["other_lead_id"] in {str(first.id), str(second.id)}
    pair = detail["possible_duplicates"][0]
    assert {pair["lead_id"], pair["other_lead_id"]} == {str(first.id), str(second.id)}

    merged = await api.client.post(
        f"/api/v1/admin/leads/{first.id}/merge",
        json={"other_lead_id": str(second.id)},
        headers=admin.auth,
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["source_count"] == 2
    assert len(body["records"]) == 2
    assert [d["status"] for d in body["possible_duplicates"]] == ["merged"]
    gone = (await api.client.get(f"/api/v1/admin/leads/{second.id}", headers=admin.auth)).json()
    assert gone["status"] == "withdrawn"
    assert gone["merged_into_id"] == str(first.id)

    record = next(r for r in body["records"] if r["source_key"] == "L2")
    split = await api.client.post(
        f"/api/v1/admin/leads/{first.id}/unmerge",
        json={"record_id": record["id"]},
        headers=admin.auth,
    )
    assert split.status_code == 200, split.text
    assert split.json()["last_name"] == "Jensen"
    assert split.json()["source_count"] == 1
    kept = (await api.client.get(f"/api/v1/admin/leads/{first.id}", headers=admin.auth)).json()
    assert kept["source_count"] == 1
    assert kept["last_name"] == "Johnson"
    decision = next(
        d for d in split.json()["possible_duplicates"] if d["other_lead_id"] == str(first.id)
    )
    assert (decision["status"], decision["reasons"]) == ("dismissed", ["unmerged by an operator"])
    # The operator's split holds: the same input again, or a new version of the split record,
    # does not fold the two leads back together.
    await run_source(runtime, mls, trigger="test", records=[seller("L1"), other])
    newer = lookalike()
    newer = type(newer)(newer.source_key, {**newer.payload, "beds": "5"})
    await run_source(runtime, mls, trigger="test", records=[newer])
    after = await api.client.get(f"/api/v1/admin/leads/{split.json()['id']}", headers=admin.auth)
    assert after.json()["status"] == "available"
    assert after.json()["beds"] == 5
    assert after.json()["source_count"] == 1
    kept = (await api.client.get(f"/api/v1/admin/leads/{first.id}", headers=admin.auth)).json()
    assert kept["source_count"] == 1
    again = await api.client.post(
        f"/api/v1/admin/leads/{first.id}/unmerge",
        json={"record_id": record["id"]},
        headers=admin.auth,
    )
    assert again.status_code == 404
    missing = await api.client.get(f"/api/v1/admin/leads/{CONSENT['ip']}", headers=admin.auth)
    assert missing.status_code == 422


async def test_operators_dismiss_a_possible_duplicate(api: Api, runtime: Runtime) -> None:
    admin = await api.admin()
    agent = await api.signup("agent@example.com")
    mls = SourceConfig(slug="demo-mls", name="MLS", type="demo", trust=0.9)
    await run_source(runtime, mls, trigger="test", records=[seller("L1"), lookalike()])
    async with runtime.transaction(write=False) as session:
        first, second = list(await session.scalars(sa.select(Lead).order_by(Lead.first_name)))
    url = f"/api/v1/admin/leads/{first.id}/dismiss-duplicate"
    body = {"other_lead_id": str(second.id)}
    assert (await api.client.post(url, json=body, headers=agent.auth)).status_code == 403

    dismissed = await api.client.post(url, json=body, headers=admin.auth)
    assert dismissed.status_code == 200, dismissed.text
    [pair] = dismissed.json()["possible_duplicates"]
    assert pair["status"] == "dismissed"
    other_side = await api.client.get(f"/api/v1/admin/leads/{second.id}", headers=admin.auth)
    assert [d["status"] for d in other_side.json()["possible_duplicates"]] == ["dismissed"]

    again = await api.client.post(url, json=body, headers=admin.auth)
    assert again.status_code == 404
    assert again.json()["code"] == "possible_duplicate_not_found"


async def test_a_merge_keeps_judging_consent_of_leads_from_consent_sources(
    api: Api, runtime: Runtime
) -> None:
    admin = await api.admin()
    mls = SourceConfig(slug="demo-mls", name="MLS", type="demo", trust=0.9)
    form = SourceConfig(
        slug="demo-webform",
        name="Form",
        type="demo",
        trust=0.5,
        options={"consent_required": True},
    )
    runtime.sources = SourceCatalog([mls, form])
    await run_source(runtime, form, trigger="test", records=[seller("F1", consent=None)])
    plain = lookalike("M1")  # an MLS record: no consent and none needed
    plain = type(plain)(
        plain.source_key, {k: v for k, v in plain.payload.items() if k != "consent"}
    )
    await run_source(runtime, mls, trigger="test", records=[plain])
    async with runtime.transaction(write=False) as session:
        from_form = await session.scalar(sa.select(Lead).where(Lead.source == "demo-webform"))
        from_mls = await session.scalar(sa.select(Lead).where(Lead.source == "demo-mls"))
    assert from_form is not None
    assert from_mls is not None
    assert "consent_missing" in {r["code"] for r in from_form.fraud_reasons}

    merged = await api.client.post(
        f"/api/v1/admin/leads/{from_mls.id}/merge",
        json={"other_lead_id": str(from_form.id)},
        headers=admin.auth,
    )
    assert merged.status_code == 200, merged.text
    # The rebuilt lead still has a web-form record without consent: the signal stays.
    assert "consent_missing" in {r["code"] for r in merged.json()["fraud_reasons"]}
