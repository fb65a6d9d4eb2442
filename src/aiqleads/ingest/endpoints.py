"""Ingestion endpoints: ad-platform webhooks, web-form intake, and operators' run views."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import ValidationError

from aiqleads.accounts.deps import AdminUser
from aiqleads.ingest.connectors.base import RawRecord, content_hash
from aiqleads.ingest.connectors.http import SourceUnavailable, send_with_retry
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.schemas import (
    IntakeIn,
    IntakeOut,
    RejectedRecordOut,
    RunDetailOut,
    RunOut,
    WebhookAck,
)
from aiqleads.ingest.service import ingest_pushed, start_replay
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.body import json_body, raw_body
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.errors import AppError, Forbidden, Invalid, NotFound, Unauthorized
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.quality.normalise import parse_datetime
from aiqleads.runtime import Runtime

webhooks = APIRouter(prefix="/webhooks", tags=["webhooks"])
intake = APIRouter(prefix="/intake", tags=["intake"])
runs = APIRouter(prefix="/admin/ingestion-runs", tags=["admin: ingestion"])

GRAPH_FIELDS = "id,created_time,ad_id,form_id,campaign_id,field_data"


def _hmac_hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _signature_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a signature header with ours. Compared as bytes: a header
    with a non-ASCII character (Starlette decodes header bytes as latin-1) does not match, where
    `hmac.compare_digest` on such a `str` raises TypeError."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _source_of_type(runtime: Runtime, kind: str) -> SourceConfig:
    for source in runtime.sources.all():
        if source.type == kind and source.enabled:
            return source
    raise NotFound(f"No {kind} source is configured", code="source_not_configured")


# Facebook Lead Ads -------------------------------------------------------------------


@webhooks.get("/facebook", response_class=Response)
async def facebook_handshake(
    runtime: RuntimeDep,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=200)] = "",
) -> Response:
    """Meta's subscription check: echo `hub.challenge` when the verify token is ours."""
    expected = runtime.settings.facebook_verify_token
    if (
        mode != "subscribe"
        or expected is None
        or not secrets.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        raise Forbidden("The verify token does not match", code="invalid_verify_token")
    return Response(challenge, media_type="text/plain")


@webhooks.post("/facebook", response_model=WebhookAck)
async def facebook_webhook(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> WebhookAck:
    """`leadgen` changes: each lead is fetched from the Graph API and ingested. If Graph cannot
    be reached we answer 502 and Meta delivers the notification again, so no lead is lost."""
    secret = runtime.settings.facebook_app_secret
    body = await raw_body(request)
    if secret is None:
        raise NotFound("Facebook is not configured", code="source_not_configured")
    expected = "sha256=" + _hmac_hex(secret.get_secret_value(), body)
    if signature is None or not _signature_matches(signature.strip(), expected):
        raise Unauthorized("X-Hub-Signature-256 does not match the body", code="invalid_signature")
    payload = json_body(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise Invalid("Expected an object with an entry list", code="invalid_payload")
    lead_ids = [
        str(change["value"]["leadgen_id"])
        for entry in payload["entry"]
        if isinstance(entry, dict)
        for change in entry.get("changes") or []
        if isinstance(change, dict)
        and change.get("field") == "leadgen"
        and isinstance(change.get("value"), dict)
        and change["value"].get("leadgen_id")
    ]
    if not lead_ids:
        return WebhookAck(received=0)
    source = _source_of_type(runtime, "facebook")
    async with httpx.AsyncClient(timeout=10.0) as client:  # one connection for every lead
        records = [await _graph_lead(runtime, client, lead_id) for lead_id in lead_ids]
    if all("graph_error" in r.payload for r in records):
        # Not one lead readable: more likely our page token lost its permission (Graph says
        # code 100 for that too) than every lead deleted. Meta delivers again.
        raise AppError(
            "The Graph API has none of this notification's leads", code="graph_error", status=502
        )
    run, _ = await ingest_pushed(session, runtime, source, records, trigger="webhook")
    return WebhookAck(received=len(records), run_id=run.id)


# Graph's error code for an object that does not exist (any more), or that this token may not
# read: for one lead among others that Graph gives us, asking again cannot help, so it is
# recorded as failed and the rest of the notification is ingested. Any other failure (Graph
# down, our token expired, rate limits), or every lead failing so, is a 502, and Meta sends
# the whole notification again.
GRAPH_NO_SUCH_OBJECT = 100


async def _graph_lead(runtime: Runtime, client: httpx.AsyncClient, leadgen_id: str) -> RawRecord:
    token = runtime.settings.facebook_access_token
    if token is None:
        raise AppError(
            "No Graph API access token is configured", code="graph_unavailable", status=502
        )
    url = f"{runtime.settings.facebook_graph_url.rstrip('/')}/{leadgen_id}"
    request = client.build_request(
        "GET", url, params={"fields": GRAPH_FIELDS, "access_token": token.get_secret_value()}
    )
    try:
        response = await send_with_retry(client, request, max_attempts=3, base_delay=0.2)
    except SourceUnavailable as exc:
        raise AppError(
            "The Graph API is unavailable; retry later", code="graph_unavailable", status=502
        ) from exc
    if 400 <= response.status_code < 500:
        error = _graph_error(response)
        if error.get("code") == GRAPH_NO_SUCH_OBJECT:
            # Kept as a record the connector fails with `graph_lead_missing`: the run shows it.
            return RawRecord(
                source_key=leadgen_id, payload={"id": leadgen_id, "graph_error": error}
            )
    if response.status_code != 200:
        raise AppError(
            f"The Graph API answered {response.status_code} for lead {leadgen_id}",
            code="graph_error",
            status=502,
        )
    try:
        lead = response.json()
    except ValueError as exc:
        raise AppError("The Graph API sent no JSON", code="graph_error", status=502) from exc
    if not isinstance(lead, dict):
        raise AppError("The Graph API sent no lead object", code="graph_error", status=502)
    updated, _ = parse_datetime(lead.get("created_time"), "created_time")
    return RawRecord(
        source_key=str(lead.get("id") or leadgen_id), payload=lead, source_updated_at=updated
    )


def _graph_error(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {"status": response.status_code}
    return {"status": response.status_code, **(error if isinstance(error, dict) else {})}


# LinkedIn lead-gen forms -------------------------------------------------------------


# LinkedIn's challenge codes are UUID-like. Only such codes are signed: the answer is the very
# signature POST /webhooks/linkedin checks, so signing arbitrary text would let anyone sign a
# body. No text of letters, digits and hyphens is a form response or an elements list.
LINKEDIN_CHALLENGE_PATTERN = r"^[A-Za-z0-9-]{1,64}$"


@webhooks.get("/linkedin")
async def linkedin_challenge(
    runtime: RuntimeDep,
    challenge: Annotated[str, Query(alias="challengeCode", pattern=LINKEDIN_CHALLENGE_PATTERN)],
) -> dict[str, str]:
    """LinkedIn's endpoint validation: the challenge code signed with our client secret."""
    secret = runtime.settings.linkedin_client_secret
    if secret is None:
        raise NotFound("LinkedIn is not configured", code="source_not_configured")
    return {
        "challengeCode": challenge,
        "challengeResponse": _hmac_hex(secret.get_secret_value(), challenge.encode()),
    }


@webhooks.post("/linkedin", response_model=WebhookAck)
async def linkedin_webhook(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    signature: Annotated[str | None, Header(alias="X-LI-Signature")] = None,
) -> WebhookAck:
    """Lead-gen form responses, signed with HMAC-SHA256 of the body (`X-LI-Signature`)."""
    secret = runtime.settings.linkedin_client_secret
    body = await raw_body(request)
    if secret is None:
        raise NotFound("LinkedIn is not configured", code="source_not_configured")
    expected = _hmac_hex(secret.get_secret_value(), body)
    given = (signature or "").strip().removeprefix("hmacsha256=")
    if not given or not _signature_matches(given, expected):
        raise Unauthorized("X-LI-Signature does not match the body", code="invalid_signature")
    payload = json_body(body)
    elements = (
        payload.get("elements")
        if isinstance(payload, dict) and "elements" in payload
        else [payload]
    )
    if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
        raise Invalid("Expected a form response or an elements list", code="invalid_payload")
    records = [
        RawRecord(
            source_key=str(e.get("id") or "sha256:" + content_hash(e)[:32]),
            payload=e,
        )
        for e in elements
    ]
    source = _source_of_type(runtime, "linkedin")
    run, _ = await ingest_pushed(session, runtime, source, records, trigger="webhook")
    return WebhookAck(received=len(records), run_id=run.id)


# Web-form intake ---------------------------------------------------------------------


@intake.post("/{source_slug}", response_model=IntakeOut, status_code=202)
async def intake_lead(
    source_slug: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
) -> IntakeOut:
    """One web-form lead with its consent record. The answer says what became of it:
    accepted, merged into an existing lead, or quarantined with coded reasons."""
    source = runtime.sources.get(source_slug)
    if source is None or source.type != "webform" or not source.enabled:
        raise NotFound("No such intake source", code="source_not_found")
    key = source.credential("api_key")
    if (
        key is None
        or api_key is None
        or not secrets.compare_digest(api_key.encode(), key.get_secret_value().encode())
    ):
        raise Unauthorized("Send the source's key in X-API-Key", code="invalid_api_key")
    payload = json_body(await raw_body(request))
    try:
        submission = IntakeIn.model_validate(payload)
    except ValidationError as exc:
        raise Invalid(
            "The submission is not valid",
            code="invalid_submission",
            # Without the input: a consumer's details do not belong in an error body or log.
            extra={
                "errors": exc.errors(include_url=False, include_context=False, include_input=False)
            },
        ) from exc
    raw = dict(payload)
    external = submission.external_id or "sha256:" + content_hash(raw)[:32]
    record = RawRecord(
        source_key=external, payload=raw, source_updated_at=submission.consent.captured_at
    )
    run, counts = await ingest_pushed(session, runtime, source, [record], trigger="intake")
    if not counts.results:
        return IntakeOut(run_id=run.id, outcome="unchanged", lead_id=None, problems=[])
    _, outcome, lead_id, problems = counts.results[0]
    return IntakeOut(
        run_id=run.id,
        outcome=outcome.value,
        lead_id=lead_id,
        problems=[p.as_dict() for p in problems],
    )


# Operators: ingestion runs -----------------------------------------------------------


@runs.get("", response_model=Page[RunOut])
async def list_runs(
    admin: AdminUser,
    session: SessionDep,
    source: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[RunOut]:
    """Runs, newest first."""
    after = decode_cursor(cursor) if cursor else None
    rows = await IngestRepository(session).list_runs(source=source, after=after, limit=limit + 1)
    return page_of(rows, limit, RunOut.model_validate, lambda r: (r.started_at, r.id))


@runs.get("/{run_id}", response_model=RunDetailOut)
async def run_detail(run_id: uuid.UUID, admin: AdminUser, session: SessionDep) -> RunDetailOut:
    """One run with its counts and the records it quarantined or could not read."""
    repo = IngestRepository(session)
    run = await repo.get_run(run_id)
    if run is None:
        raise NotFound("No such ingestion run", code="run_not_found")
    out = RunDetailOut.model_validate(run)
    out.rejected = [RejectedRecordOut.model_validate(r) for r in await repo.quarantined(run_id)]
    return out


@runs.post("/{run_id}/replay", response_model=RunOut, status_code=202)
async def replay(
    run_id: uuid.UUID, admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> RunOut:
    """Run the raw records of a past run through the pipeline again, as a new run that
    starts in the background; follow it at `GET /admin/ingestion-runs/{id}`."""
    return RunOut.model_validate(await start_replay(session, runtime, run_id))
