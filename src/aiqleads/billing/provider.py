"""Stripe: Checkout Sessions through the official library, and webhook signatures.

Signatures are checked here rather than by `stripe.WebhookSignature.verify_header`, which
reads the wall clock and only refuses old timestamps: ours take the injectable clock and
refuse timestamps too far in the future as well. The scheme is Stripe's: the header carries
`t=<unix time>` and one or more `v1=<hex HMAC-SHA256 of "t.<raw body>">` (several while a
secret is being rolled), and any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
import structlog

from aiqleads.kit.errors import AppError
from aiqleads.settings import Settings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300


class BadSignature(AppError):
    status = 400
    code = "invalid_signature"


class ProviderUnavailable(AppError):
    status = 502
    code = "payment_provider_unavailable"


def verify_signature(payload: bytes, header: str | None, secret: str, now: datetime) -> None:
    """Refuse (400) a body whose `Stripe-Signature` is missing, malformed, wrong, or made more
    than TOLERANCE_SECONDS before or after `now`."""
    if not header:
        raise BadSignature(f"The {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise BadSignature(f"The {SIGNATURE_HEADER} header has no timestamp or no v1 signature")
    expected = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures):
        raise BadSignature("No signature matches the body")
    if abs(now.timestamp() - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature(
            f"The signature's timestamp is more than {TOLERANCE_SECONDS} s from now",
            code="signature_timestamp_out_of_range",
        )


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class StripeGateway:
    """The calls AIQLeads makes to Stripe."""

    def __init__(self, settings: Settings) -> None:
        assert settings.stripe_secret_key is not None
        self.client = stripe.StripeClient(
            settings.stripe_secret_key.get_secret_value(),
            http_client=stripe.HTTPXClient(),
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=2,
        )

    async def checkout_session(self, params: dict[str, Any]) -> CheckoutSession:
        """Create a Checkout Session; the buyer pays on Stripe's page at `url`."""
        try:
            session = await self.client.v1.checkout.sessions.create_async(params=params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            log.warning("stripe_error", call="checkout.sessions.create", error=str(exc))
            raise ProviderUnavailable("The payment provider refused or did not answer") from exc
        if not session.url:
            raise ProviderUnavailable("The payment provider returned no payment page")
        return CheckoutSession(session.id, session.url)

    async def expire_session(self, session_id: str) -> str:
        """Make an open Checkout Session unpayable. Returns its status afterwards: "expired",
        or "complete" if the buyer paid it first (Stripe expires only open sessions)."""
        try:
            session = await self.client.v1.checkout.sessions.expire_async(session_id)
        except stripe.InvalidRequestError:
            try:  # not open: paid, or expired already
                session = await self.client.v1.checkout.sessions.retrieve_async(session_id)
            except stripe.StripeError as exc:
                log.warning("stripe_error", call="checkout.sessions.retrieve", error=str(exc))
                raise ProviderUnavailable("The payment provider refused or did not answer") from exc
        except stripe.StripeError as exc:
            log.warning("stripe_error", call="checkout.sessions.expire", error=str(exc))
            raise ProviderUnavailable("The payment provider refused or did not answer") from exc
        if session.status not in {"expired", "complete"}:
            raise ProviderUnavailable("The payment provider could not close the last payment page")
        return str(session.status)

    async def cancel_at_period_end(self, subscription_id: str) -> None:
        try:
            await self.client.v1.subscriptions.update_async(
                subscription_id, params={"cancel_at_period_end": True}
            )
        except stripe.StripeError as exc:
            log.warning("stripe_error", call="subscriptions.update", error=str(exc))
            raise ProviderUnavailable("The payment provider refused or did not answer") from exc

    async def cancel_now(self, subscription_id: str) -> None:
        """End the subscription at Stripe now: it stops retrying the unpaid invoice, so nobody
        is charged for a plan they no longer have. One Stripe ended already is fine."""
        try:
            await self.client.v1.subscriptions.cancel_async(subscription_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404 and "canceled" not in str(exc):
                raise ProviderUnavailable("The payment provider refused the call") from exc
            log.info("stripe_subscription_already_ended", subscription=subscription_id)
        except stripe.StripeError as exc:
            log.warning("stripe_error", call="subscriptions.cancel", error=str(exc))
            raise ProviderUnavailable("The payment provider refused or did not answer") from exc
