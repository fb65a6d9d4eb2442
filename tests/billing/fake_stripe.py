"""Stripe on loopback, for the official library to talk to, and Stripe's events.

The API serves the calls AIQLeads makes (sessions: create, expire, retrieve; subscriptions:
update, cancel), in Stripe's documented wire format: form-encoded
requests with bracketed keys (`line_items[0][price_data][unit_amount]`), a bearer secret key,
JSON objects back, and errors as `{"error": {"type", "message"}}`. Events are signed with
the SDK's own `stripe.WebhookSignature.generate_signature_header`.
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET_KEY = "sk_test_aiqleads_0123456789"
WEBHOOK_SECRET = "whsec_aiqleads_test_signing_secret"
WEBHOOK = "/api/v1/webhooks/stripe"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}{secrets.token_hex(4)}"


@dataclass
class FakeStripe:
    """What the API was asked, and how it should answer."""

    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    fail_with: int | None = None
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pay(self, session_id: str) -> None:
        """The buyer pays on the session's page (Stripe's events are the test's to send)."""
        self.sessions[session_id].update(status="complete", payment_status="paid")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/checkout/sessions", self.create_session, methods=["POST"]),
                Route("/v1/checkout/sessions/{cs_id}", self.retrieve_session, methods=["GET"]),
                Route(
                    "/v1/checkout/sessions/{cs_id}/expire", self.expire_session, methods=["POST"]
                ),
                Route("/v1/subscriptions/{sub_id}", self.update_subscription, methods=["POST"]),
                Route("/v1/subscriptions/{sub_id}", self.cancel_subscription, methods=["DELETE"]),
            ]
        )

    async def _call(self, request: Request) -> dict[str, str] | JSONResponse:
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
                status_code=401,
            )
        if self.fail_with is not None:
            return JSONResponse(
                {"error": {"type": "api_error", "message": "Something went wrong"}},
                status_code=self.fail_with,
            )
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        self.calls.append((request.url.path, form))
        return form

    async def create_session(self, request: Request) -> JSONResponse:
        form = await self._call(request)
        if isinstance(form, JSONResponse):
            return form
        session_id = new_id("cs")
        metadata = {
            k.removeprefix("metadata[").rstrip("]"): v
            for k, v in form.items()
            if k.startswith("metadata[")
        }
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "client_reference_id": form.get("client_reference_id"),
            "metadata": metadata,
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "currency": "usd",
            "livemode": False,
        }
        return JSONResponse(self.sessions[session_id])

    def _session(self, request: Request) -> dict[str, Any] | JSONResponse:
        found = self.sessions.get(request.path_params["cs_id"])
        if found is None:
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "message": f"No such checkout.session: '{request.path_params['cs_id']}'",
                    }
                },
                status_code=404,
            )
        return found

    async def retrieve_session(self, request: Request) -> JSONResponse:
        form = await self._call(request)
        if isinstance(form, JSONResponse):
            return form
        found = self._session(request)
        return found if isinstance(found, JSONResponse) else JSONResponse(found)

    async def expire_session(self, request: Request) -> JSONResponse:
        """Stripe expires only an open session; any other is a 400."""
        form = await self._call(request)
        if isinstance(form, JSONResponse):
            return form
        found = self._session(request)
        if isinstance(found, JSONResponse):
            return found
        if found["status"] != "open":
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": 'Only Checkout Sessions with a status in ["open"] can be '
                        f'expired. This Checkout Session has a status of "{found["status"]}".',
                    }
                },
                status_code=400,
            )
        found["status"] = "expired"
        return JSONResponse(found)

    async def update_subscription(self, request: Request) -> JSONResponse:
        form = await self._call(request)
        if isinstance(form, JSONResponse):
            return form
        return JSONResponse(
            {
                "id": request.path_params["sub_id"],
                "object": "subscription",
                "status": "active",
                "cancel_at_period_end": form.get("cancel_at_period_end") == "true",
            }
        )

    async def cancel_subscription(self, request: Request) -> JSONResponse:
        form = await self._call(request)
        if isinstance(form, JSONResponse):
            return form
        return JSONResponse(
            {"id": request.path_params["sub_id"], "object": "subscription", "status": "canceled"}
        )


def event(
    kind: str, obj: dict[str, Any], created: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """A Stripe event envelope around `obj`."""
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(created.timestamp()),
        "type": kind,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def signed(body: bytes, at: datetime, secret: str = WEBHOOK_SECRET) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, int(at.timestamp())
    )


async def deliver(
    client: httpx.AsyncClient, payload: dict[str, Any], at: datetime
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await client.post(
        WEBHOOK,
        content=body,
        headers={"Stripe-Signature": signed(body, at), "Content-Type": "application/json"},
    )


def paid_session(
    session_id: str,
    metadata: dict[str, str],
    amount: int,
    mode: str = "payment",
    subscription: str | None = None,
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "payment_status": "paid",
        "amount_total": amount,
        "metadata": metadata,
        "subscription": subscription,
        # A payment-mode session's PaymentIntent (subscription sessions have none).
        "payment_intent": new_id("pi") if mode == "payment" else None,
    }


def subscription_invoice(
    invoice_id: str,
    subscription_id: str,
    metadata: dict[str, str],
    amount: int,
    start: datetime,
    end: datetime,
    reason: str = "subscription_create",
) -> dict[str, Any]:
    """An invoice as API versions since 2025-03 send it (the subscription under `parent`)."""
    return {
        "id": invoice_id,
        "object": "invoice",
        "billing_reason": reason,
        "status": "paid",
        "subtotal": amount,
        "total": amount,
        "amount_due": amount,
        "amount_paid": amount,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription_id, "metadata": metadata},
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "object": "line_item",
                    "amount": amount,
                    "period": {"start": int(start.timestamp()), "end": int(end.timestamp())},
                }
            ],
        },
    }
