"""Stripe's events, applied to subscriptions, invoices and credits.

An event is stored first (`payment_events`, by Stripe's event id, so a redelivery is stored
once), answered, and applied by the job `billing.apply_event` in a transaction of its own that
also marks it processed: applied once, or not at all. The sweeper applies what a crash left
pending, and retries an event that arrived before what it needs.

Stripe does not promise order. What this module does about it:
- an invoice paid before its subscription's checkout completed creates the subscription from
  the metadata Stripe copies from the subscription onto its invoices;
- a subscription update older than the last one applied (`created` of the event) is stale and
  changes nothing;
- an ended subscription is never revived by a late event (money that arrives late still buys
  its credits);
- an event that needs a subscription nobody has described yet waits and is retried (backoff,
  up to MAX_ATTEMPTS, then `failed` for operators).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.billing.models import (
    EventStatus,
    Invoice,
    InvoiceStatus,
    PageStatus,
    PaymentEvent,
    Provider,
    Subscription,
    SubscriptionStatus,
)
from aiqleads.billing.repository import BillingRepository
from aiqleads.billing.service import Billing, money, pack_invoice, subscription_invoice
from aiqleads.kit.retry import backoff
from aiqleads.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 10

STATUSES = {
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAST_DUE,
    "incomplete": SubscriptionStatus.PENDING,
    "canceled": SubscriptionStatus.CANCELED,
    "incomplete_expired": SubscriptionStatus.CANCELED,
}


MONTHLY_REASONS = frozenset({"subscription_create", "subscription_cycle"})


class NotYet(Exception):  # noqa: N818  (a wait, not an error)
    """The event needs something another event has not brought yet: retried later."""


class InvalidEvent(ValueError):
    """The event cannot be applied, ever (a shape or reference we do not know)."""


def _at(unix: Any) -> datetime | None:
    return datetime.fromtimestamp(int(unix), UTC) if unix else None


def _id(value: Any) -> str | None:
    """An id, whether the API version sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _invoice_subscription(obj: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """An invoice's subscription id and that subscription's metadata, where the API version
    puts them (`parent.subscription_details` since 2025-03, top-level before)."""
    details = (
        (obj.get("parent") or {}).get("subscription_details")
        or obj.get("subscription_details")
        or {}
    )
    ref = _id(obj.get("subscription")) or _id(details.get("subscription"))
    return ref, dict(details.get("metadata") or {})


def _invoice_period(obj: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    for item in (obj.get("lines") or {}).get("data") or []:
        period = item.get("period") or {}
        if period.get("start") and period.get("end"):
            return _at(period["start"]), _at(period["end"])
    return _at(obj.get("period_start")), _at(obj.get("period_end"))


def _payment_intent(obj: dict[str, Any]) -> str | None:
    """The PaymentIntent that paid a Checkout Session or an invoice: top-level on sessions
    and on invoices before 2025-03, under `payments` since."""
    found = _id(obj.get("payment_intent"))
    if found:
        return found
    for payment in (obj.get("payments") or {}).get("data") or []:
        found = _id((payment.get("payment") or {}).get("payment_intent"))
        if found:
            return found
    return None


def _subscription_period_end(obj: dict[str, Any]) -> datetime | None:
    """Top-level before 2025-03, on the items since."""
    if obj.get("current_period_end"):
        return _at(obj["current_period_end"])
    for item in (obj.get("items") or {}).get("data") or []:
        if item.get("current_period_end"):
            return _at(item["current_period_end"])
    return None


Handler = Callable[["StripeEvents", dict[str, Any], PaymentEvent, datetime], Awaitable[None]]


class StripeEvents:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session, self.runtime = session, runtime
        self.billing = Billing(session, runtime)
        self.repo = BillingRepository(session)

    async def apply(self, event: PaymentEvent, now: datetime) -> None:
        handler = HANDLERS.get(event.type)
        if handler is None:
            return  # an event type we do not subscribe to: stored, nothing to do
        obj = (event.payload.get("data") or {}).get("object")
        if not isinstance(obj, dict):
            raise InvalidEvent("the event has no data.object")
        await handler(self, obj, event, now)

    async def _user(self, metadata: dict[str, Any]) -> User | None:
        try:
            user_id = uuid.UUID(str(metadata.get("user_id")))
        except ValueError:
            return None
        return await self.session.get(User, user_id)

    async def _subscription(
        self, ref: str | None, metadata: dict[str, Any], now: datetime
    ) -> Subscription:
        """Our row of Stripe's subscription `ref`, created from its metadata (user, plan) the
        first time any event names it."""
        if not ref:
            raise InvalidEvent("the event names no subscription")
        found = await self.repo.subscription_by_ref(Provider.STRIPE, ref)
        if found is not None:
            return found
        user = await self._user(metadata)
        plan = self.runtime.plans.plan(str(metadata.get("plan")))
        if user is None or plan is None:
            raise NotYet(f"subscription {ref} is not known yet and its metadata names no plan")
        older = await self.repo.live_subscription(user.id)
        if older is not None and (older.provider, older.provider_ref) == (Provider.STRIPE, ref):
            # Another event of this subscription made the row after our lookup above and
            # committed while we waited for the buyer's live subscription (Stripe sends
            # checkout.session.completed and invoice.paid within moments): it is this one.
            return older
        if older is not None:
            log.warning("subscription_replaced", user=str(user.id), old=str(older.id), new=ref)
            await self.billing.end_everywhere(older, now, "replaced by a newer subscription")
            await self.session.flush()
        subscription = Subscription(
            id=uuid.uuid4(),
            user_id=user.id,
            plan=plan.id,
            status=SubscriptionStatus.PENDING,
            provider=Provider.STRIPE,
            provider_ref=ref,
            cancel_at_period_end=False,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(subscription)
        except IntegrityError:  # another event of it, applied at this moment, made the row
            found = await self.repo.subscription_by_ref(Provider.STRIPE, ref)
            if found is None:
                raise
            return found
        return subscription

    async def _activate(
        self, subscription: Subscription, end: datetime | None, now: datetime
    ) -> None:
        user = await self.session.get(User, subscription.user_id)
        assert user is not None
        await self.billing.activate(subscription, user, None, end, now)

    async def checkout_completed(
        self, obj: dict[str, Any], event: PaymentEvent, now: datetime
    ) -> None:
        if obj.get("mode") == "subscription":
            await self._page_is(obj, PageStatus.COMPLETE, now)
        if obj.get("payment_status") not in {"paid", "no_payment_required"}:
            return  # a delayed payment method: `async_payment_succeeded` follows
        metadata = dict(obj.get("metadata") or {})
        if obj.get("mode") == "subscription":
            subscription = await self._subscription(_id(obj.get("subscription")), metadata, now)
            await self._activate(subscription, None, now)
            return
        invoice = await self.repo.invoice_by_ref(Provider.STRIPE, str(obj.get("id")))
        if invoice is None:
            invoice = await self._pack_invoice(obj, metadata, now)
        invoice.payment_intent = invoice.payment_intent or _payment_intent(obj)
        await self.billing.settle(invoice, now)

    async def _page_is(self, obj: dict[str, Any], status: PageStatus, now: datetime) -> None:
        """Record what became of a subscription's payment page (`obj`, a Checkout Session)."""
        page = await self.repo.page_by_ref(str(obj.get("id")))
        if page is not None and page.status is PageStatus.OPEN:
            page.status, page.updated_at = status, now

    async def checkout_expired(
        self, obj: dict[str, Any], event: PaymentEvent, now: datetime
    ) -> None:
        await self._page_is(obj, PageStatus.EXPIRED, now)
        # A credit pack's page: its open invoice can no longer be paid (a payment Stripe
        # confirms later anyway still settles it).
        invoice = await self.repo.invoice_by_ref(Provider.STRIPE, str(obj.get("id")))
        if invoice is not None and invoice.status is InvoiceStatus.OPEN:
            invoice.status = InvoiceStatus.VOID
            invoice.checkout_url = None

    async def _pack_invoice(
        self, obj: dict[str, Any], metadata: dict[str, Any], now: datetime
    ) -> Invoice:
        """A paid session whose invoice we never stored (the request that opened it failed
        after Stripe answered): the money arrived, so the invoice is made from its metadata."""
        user = await self._user(metadata)
        pack = self.runtime.plans.pack(str(metadata.get("credit_pack")))
        if user is None or pack is None:
            raise InvalidEvent(f"checkout session {obj.get('id')} is not one of ours")
        invoice = pack_invoice(pack, user.id, now, Provider.STRIPE, provider_ref=str(obj["id"]))
        invoice.amount_cents = int(obj.get("amount_total") or pack.price_cents)
        self.session.add(invoice)
        await self.session.flush()
        return invoice

    async def _stripe_invoice(
        self, obj: dict[str, Any], subscription: Subscription, now: datetime
    ) -> Invoice:
        """Our copy of Stripe's subscription invoice `obj` (made the first time it is seen)."""
        found = await self.repo.invoice_by_ref(Provider.STRIPE, str(obj["id"]))
        if found is not None:
            return found
        start, end = _invoice_period(obj)
        plan = self.runtime.plans.of(subscription.plan)
        # `total`: what the period costs, also when the customer's Stripe balance paid it
        # (amount_due and amount_paid are 0 then).
        amount = int(obj.get("total") or obj.get("amount_due") or obj.get("amount_paid") or 0)
        # A month's credits come with a month's invoice: the first and each renewal, not a
        # proration or a $0 adjustment.
        monthly = obj.get("billing_reason") in MONTHLY_REASONS and amount > 0
        invoice = subscription_invoice(
            subscription,
            plan,
            start or now,
            Provider.STRIPE,
            end=end,
            amount_cents=amount,
            credits=plan.monthly_credits if monthly else 0,
            at=now,
        )
        invoice.provider_ref = str(obj["id"])
        invoice.checkout_url = obj.get("hosted_invoice_url")
        self.session.add(invoice)
        await self.session.flush()
        return invoice

    async def invoice_paid(self, obj: dict[str, Any], event: PaymentEvent, now: datetime) -> None:
        ref, metadata = _invoice_subscription(obj)
        if ref is None:
            return  # not a subscription's invoice: nothing of ours
        subscription = await self._subscription(ref, metadata, now)
        invoice = await self._stripe_invoice(obj, subscription, now)
        invoice.payment_intent = invoice.payment_intent or _payment_intent(obj)
        await self.billing.settle(invoice, now)

    async def charge_refunded(
        self, obj: dict[str, Any], event: PaymentEvent, now: datetime
    ) -> None:
        """Money paid back at Stripe (from its dashboard, or a refund by API): the credits
        it bought go back too, in proportion (`amount_refunded` counts every refund of the
        charge so far)."""
        await self._money_back(obj, int(obj.get("amount_refunded") or 0), "refunded", now)

    async def dispute_closed(self, obj: dict[str, Any], event: PaymentEvent, now: datetime) -> None:
        """A chargeback the platform lost: the bank took the money back, and the credits go."""
        if obj.get("status") == "lost":
            await self._money_back(obj, int(obj.get("amount") or 0), "charged back", now)

    async def _money_back(self, obj: dict[str, Any], cents: int, how: str, now: datetime) -> None:
        intent = _id(obj.get("payment_intent"))
        invoice = await self.repo.invoice_by_payment(intent) if intent else None
        if invoice is None or invoice.status is not InvoiceStatus.PAID or cents <= 0:
            return  # not a payment of ours that bought anything (or nothing taken back)
        await self.billing.reverse(invoice, min(cents, invoice.amount_cents), how, now)

    async def invoice_failed(self, obj: dict[str, Any], event: PaymentEvent, now: datetime) -> None:
        ref, metadata = _invoice_subscription(obj)
        if ref is None:
            return
        subscription = await self._subscription(ref, metadata, now)
        invoice = await self._stripe_invoice(obj, subscription, now)
        if obj.get("status") == "paid" or invoice.status is InvoiceStatus.PAID:
            return  # a late report of a failure since paid for
        await self.billing.fall_behind(
            subscription,
            now,
            f"We could not collect {money(invoice.amount_cents)} for invoice {invoice.number}.",
        )

    async def subscription_updated(
        self, obj: dict[str, Any], event: PaymentEvent, now: datetime
    ) -> None:
        subscription = await self._subscription(_id(obj), dict(obj.get("metadata") or {}), now)
        stated = subscription.provider_updated_at
        if stated is not None and event.created < stated:
            log.info(
                "stale_subscription_event", event_id=event.id, subscription=str(subscription.id)
            )
            return
        subscription.provider_updated_at = event.created
        subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
        status = STATUSES.get(str(obj.get("status")))
        if status is SubscriptionStatus.CANCELED:
            await self.billing.end(subscription, now, "cancelled at Stripe")
        elif status is SubscriptionStatus.PAST_DUE:
            await self.billing.fall_behind(subscription, now, "Stripe could not collect it.")
        elif status is SubscriptionStatus.ACTIVE:
            await self._activate(subscription, _subscription_period_end(obj), now)

    async def subscription_deleted(
        self, obj: dict[str, Any], event: PaymentEvent, now: datetime
    ) -> None:
        subscription = await self._subscription(_id(obj), dict(obj.get("metadata") or {}), now)
        if subscription.provider_updated_at is None or event.created > (
            subscription.provider_updated_at
        ):
            subscription.provider_updated_at = event.created
        await self.billing.end(subscription, now, "cancelled")


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": StripeEvents.checkout_completed,
    "checkout.session.async_payment_succeeded": StripeEvents.checkout_completed,
    "checkout.session.expired": StripeEvents.checkout_expired,
    "charge.refunded": StripeEvents.charge_refunded,
    "charge.dispute.closed": StripeEvents.dispute_closed,
    "checkout.session.async_payment_failed": StripeEvents.checkout_expired,
    "invoice.paid": StripeEvents.invoice_paid,
    "invoice.payment_failed": StripeEvents.invoice_failed,
    "customer.subscription.created": StripeEvents.subscription_updated,
    "customer.subscription.updated": StripeEvents.subscription_updated,
    "customer.subscription.deleted": StripeEvents.subscription_deleted,
}


def stored_event(payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `payment_events` row of a verified delivery; InvalidEvent if it is not an event."""
    event_id, kind, created = payload.get("id"), payload.get("type"), payload.get("created")
    data = payload.get("data")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 255 and isinstance(kind, str)):
        raise InvalidEvent("an event needs a string id and type")
    if not isinstance(created, int) or not isinstance(data, dict):
        raise InvalidEvent("an event needs an integer created and a data object")
    return {
        "id": event_id,
        "type": kind[:100],
        "payload": payload,
        "created": _at(created) or now,
        "received_at": now,
        "status": EventStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }


async def apply_event(runtime: Runtime, event_id: str) -> EventStatus | None:
    """Apply one stored event in one transaction that also records the outcome; None if it
    was applied already (or by a concurrent worker)."""
    async with runtime.transaction() as session:
        event = await BillingRepository(session).pending_event(event_id)
        if event is None:
            return None
        now = runtime.clock.now()
        event.attempts += 1
        try:
            async with session.begin_nested():
                await StripeEvents(session, runtime).apply(event, now)
        except NotYet as exc:
            error = str(exc)
        except InvalidEvent as exc:  # no retry will help
            event.attempts = MAX_ATTEMPTS
            error = str(exc)
        except Exception as exc:  # recorded and retried, never lost
            log.exception("payment_event_failed", event_id=event_id, type=event.type)
            error = f"{type(exc).__name__}: {exc}"
        else:
            event.status = EventStatus.PROCESSED
            event.processed_at = now
            event.last_error = None
            log.info("payment_event_applied", event_id=event_id, type=event.type)
            return event.status
        event.last_error = error[:1000]
        if event.attempts >= MAX_ATTEMPTS:
            event.status = EventStatus.FAILED
            log.error("payment_event_gave_up", event_id=event_id, type=event.type, error=error)
        else:
            event.next_attempt_at = now + backoff(event.attempts)
        return event.status
