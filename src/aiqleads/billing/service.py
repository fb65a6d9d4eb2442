"""Billing rules: subscribing, cancelling, buying credit packs, and what a paid invoice does.

Two payment providers. With a Stripe key, a buyer pays on a Stripe Checkout page and Stripe's
events (billing.events) settle the invoice. Without one, payment is manual: the buyer gets an
open invoice and an operator marks it paid once the money arrived. Either way `settle` is the
one place where an invoice becomes paid: it grants the invoice's credits in one ledger
transaction whose reference is the invoice (posted once, whatever is retried) and, for a
subscription invoice, starts or renews the paid period.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    PageStatus,
    PaymentPage,
    Provider,
    Subscription,
    SubscriptionStatus,
)
from aiqleads.billing.plans import FREE_PLAN, CreditPack, Plan
from aiqleads.billing.provider import ProviderUnavailable, StripeGateway
from aiqleads.billing.repository import BillingRepository
from aiqleads.checkout.models import Order, Purchase
from aiqleads.kit.errors import AppError, Conflict, NotFound
from aiqleads.leads.models import Lead
from aiqleads.ledger.models import AccountKind, TransactionKind
from aiqleads.ledger.service import Ledger, Leg
from aiqleads.notifications.service import notify
from aiqleads.runtime import Runtime


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def add_month(at: datetime) -> datetime:
    """The same time one calendar month later (Jan 31 -> Feb 28)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def new_invoice(at: datetime, **fields: Any) -> Invoice:
    """An invoice with its id and number ("AIQ-20260302-7F3A9C21B04E": the date and 48 random
    bits of its id; 32 gave two of a day's 10,000 receipts the same number about one day in
    a hundred, a checkout failing on the unique index)."""
    invoice_id = uuid.uuid4()
    return Invoice(
        id=invoice_id,
        number=f"AIQ-{at:%Y%m%d}-{invoice_id.hex[:12].upper()}",
        created_at=at,
        **fields,
    )


def line(description: str, unit_cents: int, quantity: int = 1) -> dict[str, Any]:
    return {
        "description": description,
        "quantity": quantity,
        "unit_cents": unit_cents,
        "amount_cents": unit_cents * quantity,
    }


def purchase_receipt(buyer: User, order: Order, items: Sequence[tuple[Lead, Purchase]]) -> Invoice:
    """The receipt of a checkout, not yet written: an invoice paid in credits, one line per
    lead."""
    return new_invoice(
        order.created_at,
        user_id=buyer.id,
        kind=InvoiceKind.PURCHASE,
        status=InvoiceStatus.PAID,
        provider=Provider.CREDITS,
        description=f"{len(items)} lead(s), paid in credits",
        lines=[
            line(
                f"{lead.kind.replace('_', ' ')} lead {lead.id}"
                + (f", {lead.city}, {lead.state}" if lead.city and lead.state else ""),
                purchase.price_cents,
            )
            for lead, purchase in items
        ],
        amount_cents=order.total_cents,
        credits=0,
        order_id=order.id,
        paid_at=order.created_at,
    )


class NoSubscription(NotFound):
    code = "no_subscription"


@dataclass(frozen=True)
class Payment:
    """What a buyer does next to pay: open Stripe's page, or wait for the manual invoice."""

    invoice: Invoice | None
    checkout_url: str | None
    subscription: Subscription | None


class Billing:
    """What happens when money arrives or stops arriving (requests, events and jobs)."""

    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session, self.runtime = session, runtime
        self.repo = BillingRepository(session)

    async def _user(self, user_id: uuid.UUID) -> User:
        user = await self.session.get(User, user_id)
        if user is None:
            raise NotFound("No such user", code="user_not_found")
        return user

    async def settle(self, invoice: Invoice, at: datetime, *, by: uuid.UUID | None = None) -> bool:
        """Mark the invoice paid and do what it pays for; False if it was paid already."""
        if invoice.status is InvoiceStatus.PAID:
            return False
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = at
        invoice.paid_by = by
        user = await self._user(invoice.user_id)
        if invoice.credits:
            ledger = Ledger(self.session)
            source = (
                AccountKind.STRIPE_CLEARING
                if invoice.provider is Provider.STRIPE
                else (AccountKind.GRANTS)
            )
            kind = (
                TransactionKind.SUBSCRIPTION
                if invoice.kind is InvoiceKind.SUBSCRIPTION
                else TransactionKind.TOP_UP
            )
            paid_from, into = await ledger.accounts(
                at, (source, None), (AccountKind.CREDITS, user.id)
            )
            await ledger.post(
                kind,
                [Leg(paid_from, -invoice.credits), Leg(into, invoice.credits)],
                at,
                reference=str(invoice.id),
                memo=f"{invoice.description} (invoice {invoice.number})",
                actor_id=by,
            )
        if invoice.subscription_id is not None:
            subscription = await self.session.get(Subscription, invoice.subscription_id)
            assert subscription is not None
            if (
                invoice.provider is Provider.MANUAL
                and subscription.status is SubscriptionStatus.PENDING
                and invoice.period_start is not None
                and invoice.period_start < at
            ):
                # A manual plan starts when it is paid: a transfer that arrives ten days
                # after the subscribe buys a whole month from then, not twenty days.
                _restart_period(invoice, self.runtime.plans.of(subscription.plan), at)
            await self.activate(subscription, user, invoice.period_start, invoice.period_end, at)
            await self._still_owed(subscription, invoice, at)
        audit(
            self.session,
            actor_id=by,
            action="billing.invoice_paid",
            subject_type="invoice",
            subject_id=str(invoice.id),
            at=at,
            detail={
                "user": str(user.id),
                "provider": invoice.provider.value,
                "amount_cents": invoice.amount_cents,
                "credits": invoice.credits,
            },
        )
        credits = (
            f" {invoice.credits:,} credits were added to your balance." if invoice.credits else ""
        )
        await notify(
            self.session,
            self.runtime,
            user,
            topic="purchase_receipts",
            kind="payment_received",
            title=f"Payment received: {money(invoice.amount_cents)}",
            body=f"We received {money(invoice.amount_cents)} for {invoice.description} "
            f"(invoice {invoice.number}).{credits}",
            data={"invoice_id": str(invoice.id)},
        )
        return True

    async def reverse(self, invoice: Invoice, cents: int, how: str, at: datetime) -> None:
        """`cents` of the paid `invoice` went back to the payer at Stripe (in all, so far):
        the credits they bought go back in the same proportion, once. Credits already spent
        cannot be: the shortfall is in the audit log for operators, and is not taken from
        credits bought later."""
        target = invoice.credits * min(cents, invoice.amount_cents) // max(invoice.amount_cents, 1)
        owed = target - invoice.credits_reversed
        if owed <= 0:
            return
        user = await self._user(invoice.user_id)
        ledger = Ledger(self.session)
        paid_from, credits = await ledger.accounts(
            at, (AccountKind.STRIPE_CLEARING, None), (AccountKind.CREDITS, user.id)
        )
        taken = min(owed, await ledger.balance(credits))
        if taken:
            await ledger.post(
                TransactionKind.REVERSAL,
                [Leg(credits, -taken), Leg(paid_from, taken)],
                at,
                reference=f"{invoice.id}:{target}",
                memo=f"{money(cents)} of invoice {invoice.number} {how}",
            )
        invoice.credits_reversed = target
        audit(
            self.session,
            actor_id=None,
            action="billing.payment_reversed",
            subject_type="invoice",
            subject_id=str(invoice.id),
            at=at,
            detail={
                "user": str(user.id),
                "how": how,
                "amount_cents": cents,
                "credits_taken": taken,
                "credits_already_spent": owed - taken,
            },
        )
        await notify(
            self.session,
            self.runtime,
            user,
            topic="purchase_receipts",
            kind="payment_reversed",
            title=f"Payment {how}: {money(cents)}",
            body=f"{money(cents)} of invoice {invoice.number} has been {how} in all; "
            f"{taken:,} of the credits it bought were taken back from your balance.",
            data={"invoice_id": str(invoice.id)},
        )

    async def activate(
        self,
        subscription: Subscription,
        user: User,
        start: datetime | None,
        end: datetime | None,
        at: datetime,
    ) -> None:
        """The subscription is paid up (until `end`): its plan is the user's. An ended one
        stays ended (money that arrives late still buys its credits, not the plan)."""
        if subscription.status is SubscriptionStatus.CANCELED:
            return
        subscription.status = SubscriptionStatus.ACTIVE
        subscription.grace_until = None
        if start is not None:
            subscription.current_period_start = start
        if end is not None and (
            subscription.current_period_end is None or end > subscription.current_period_end
        ):
            subscription.current_period_end = end
        subscription.updated_at = at
        self._set_plan(user, subscription.plan, at, "subscription active")

    async def _still_owed(self, subscription: Subscription, paid: Invoice, at: datetime) -> None:
        """Paying a month does not pay a later one: while a later invoice of the subscription
        is open, it stays past due. (Stripe's failure of a renewal may be applied before the
        payment of the month before: its events come in any order and are applied at once.)"""
        if paid.period_start is None:
            return
        later = [
            invoice
            for invoice in await self.repo.open_invoices_of(subscription.id)
            if invoice.period_start is not None and invoice.period_start > paid.period_start
        ]
        if later:
            owed = min(later, key=lambda invoice: invoice.period_start or at)
            await self.fall_behind(
                subscription,
                at,
                f"Invoice {owed.number} for {money(owed.amount_cents)} is still open.",
            )

    async def fall_behind(self, subscription: Subscription, at: datetime, what: str) -> None:
        """A renewal is unpaid (`what` says how): the plan holds through the grace period, and
        the user is told."""
        if subscription.status is not SubscriptionStatus.ACTIVE:
            return
        subscription.status = SubscriptionStatus.PAST_DUE
        subscription.grace_until = at + timedelta(days=self.runtime.settings.billing_grace_days)
        subscription.updated_at = at
        user = await self._user(subscription.user_id)
        plan = self.runtime.plans.of(subscription.plan)
        await notify(
            self.session,
            self.runtime,
            user,
            topic="purchase_receipts",
            kind="payment_due",
            title=f"Your {plan.name} renewal is unpaid",
            body=f"{what} Your {plan.name} plan stays active until "
            f"{subscription.grace_until:%Y-%m-%d}; once the renewal is paid it carries on, "
            "otherwise it falls back to Basic then.",
            data={"subscription_id": str(subscription.id)},
        )

    async def end(self, subscription: Subscription, at: datetime, reason: str) -> None:
        """The subscription is over: its open invoices are void, the user is on Basic."""
        if subscription.status is SubscriptionStatus.CANCELED:
            return
        subscription.status = SubscriptionStatus.CANCELED
        subscription.ended_at = at
        subscription.updated_at = at
        subscription.grace_until = None
        for invoice in await self.repo.open_invoices_of(subscription.id):
            invoice.status = InvoiceStatus.VOID
        user = await self._user(subscription.user_id)
        if user.plan == subscription.plan:
            self._set_plan(user, FREE_PLAN, at, reason)
        plan = self.runtime.plans.of(subscription.plan)
        await notify(
            self.session,
            self.runtime,
            user,
            topic="purchase_receipts",
            kind="subscription_ended",
            title=f"Your {plan.name} plan has ended",
            body=f"Your {plan.name} plan ended ({reason}). You are on Basic now; your credits "
            "stay yours.",
            data={"subscription_id": str(subscription.id)},
        )

    async def end_everywhere(self, subscription: Subscription, at: datetime, reason: str) -> None:
        """End the subscription here and, if Stripe bills it, at Stripe (which then stops
        charging for it); `ProviderUnavailable` if Stripe cannot be told, and nothing ends."""
        if subscription.provider is Provider.STRIPE and self.runtime.stripe is not None:
            assert subscription.provider_ref is not None
            await self.runtime.stripe.cancel_now(subscription.provider_ref)
        await self.end(subscription, at, reason)

    def _set_plan(self, user: User, plan: str, at: datetime, reason: str) -> None:
        if user.plan == plan:
            return
        audit(
            self.session,
            actor_id=None,
            action="billing.plan_changed",
            subject_type="user",
            subject_id=str(user.id),
            at=at,
            detail={"from": user.plan, "to": plan, "reason": reason},
        )
        user.plan = plan
        user.updated_at = at

    async def mark_paid(self, invoice_id: uuid.UUID, operator: User) -> Invoice:
        """An operator saw the money of a manual invoice arrive."""
        found = await self.repo.invoice(invoice_id)
        if found is None:
            raise NotFound("No such invoice", code="invoice_not_found")
        if found.subscription_id is not None:
            # The subscription first, then its invoice: the order the renewal and grace jobs
            # take them in (the other order deadlocked with a plan ending at that moment).
            await self.repo.subscription(found.subscription_id)
        invoice = await self.repo.invoice(invoice_id, lock=True)
        assert invoice is not None
        if invoice.provider is not Provider.MANUAL:
            raise Conflict(
                "This invoice is paid through its provider, not by hand", code="not_manual"
            )
        if invoice.status is InvoiceStatus.VOID:
            raise Conflict("This invoice is void", code="invoice_void")
        if invoice.status is InvoiceStatus.PAID:
            raise Conflict("This invoice is paid already", code="invoice_paid")
        await self.settle(invoice, self.runtime.clock.now(), by=operator.id)
        return invoice

    async def renew_manual(self, limit: int = 200) -> int:
        """Manual subscriptions at the end of their period: end those cancelled, bill the
        others for the next month (they are past due until it is paid); returns how many."""
        now = self.runtime.clock.now()
        lapsed = await self.repo.lapsed_periods(now, limit)
        for subscription in lapsed:
            if subscription.cancel_at_period_end:
                await self.end(subscription, now, "cancelled at the end of its period")
                continue
            plan = self.runtime.plans.of(subscription.plan)
            start = subscription.current_period_end
            assert start is not None
            invoice = subscription_invoice(subscription, plan, start, Provider.MANUAL)
            self.session.add(invoice)
            await self.fall_behind(
                subscription,
                now,
                f"Invoice {invoice.number} for {money(invoice.amount_cents)} renews your plan.",
            )
        return len(lapsed)


def subscription_invoice(
    subscription: Subscription,
    plan: Plan,
    start: datetime,
    provider: Provider,
    *,
    end: datetime | None = None,
    amount_cents: int | None = None,
    credits: int | None = None,
    at: datetime | None = None,
) -> Invoice:
    """An open invoice for one month of `plan` from `start` (Stripe's invoices say their own
    period and amount, and whether they are a month's renewal)."""
    end = end or add_month(start)
    amount = plan.monthly_price_cents if amount_cents is None else amount_cents
    credits = plan.monthly_credits if credits is None else credits
    return new_invoice(
        at or start,
        user_id=subscription.user_id,
        kind=InvoiceKind.SUBSCRIPTION,
        status=InvoiceStatus.OPEN,
        provider=provider,
        description=_period_description(plan, start, end),
        lines=[
            line(f"{plan.name} plan, one month", amount),
            line(f"{credits:,} credits included", 0),
        ],
        amount_cents=amount,
        credits=credits,
        plan=plan.id,
        subscription_id=subscription.id,
        period_start=start,
        period_end=end,
    )


def _period_description(plan: Plan, start: datetime, end: datetime) -> str:
    return f"{plan.name} plan, {start:%Y-%m-%d} to {end:%Y-%m-%d}"


def _restart_period(invoice: Invoice, plan: Plan, start: datetime) -> None:
    end = add_month(start)
    invoice.period_start, invoice.period_end = start, end
    invoice.description = _period_description(plan, start, end)


def pack_invoice(
    pack: CreditPack, user_id: uuid.UUID, at: datetime, provider: Provider, **fields: Any
) -> Invoice:
    """An open invoice for a credit pack."""
    return new_invoice(
        at,
        user_id=user_id,
        kind=InvoiceKind.CREDIT_PACK,
        status=InvoiceStatus.OPEN,
        provider=provider,
        description=f"Credit pack {pack.name}",
        lines=[line(f"{pack.name}: {pack.credits:,} credits", pack.price_cents)],
        amount_cents=pack.price_cents,
        credits=pack.credits,
        credit_pack=pack.id,
        **fields,
    )


async def end_lapsed_grace(runtime: Runtime, limit: int = 200) -> int:
    """Past-due subscriptions whose grace period is over fall back to Basic; a Stripe one is
    cancelled at Stripe first (outside any transaction: no row stays locked across the call),
    and stays past due, to be tried again, if Stripe cannot be reached. Returns how many
    ended."""
    async with runtime.transaction(write=False) as session:
        due = await BillingRepository(session).grace_over(runtime.clock.now(), limit)
    ended = 0
    for subscription_id, provider, ref in due:
        if provider is Provider.STRIPE and runtime.stripe is not None and ref is not None:
            try:
                await runtime.stripe.cancel_now(ref)
            except ProviderUnavailable:
                continue
        async with runtime.transaction() as session:
            now = runtime.clock.now()
            subscription = await BillingRepository(session).subscription(subscription_id)
            if (
                subscription is None
                or subscription.status is not SubscriptionStatus.PAST_DUE
                or subscription.grace_until is None
                or subscription.grace_until > now
            ):
                continue  # paid meanwhile
            await Billing(session, runtime).end(subscription, now, "the renewal was not paid")
            ended += 1
    return ended


class BillingService:
    """A buyer's own billing: plans, packs, invoices."""

    def __init__(self, session: AsyncSession, runtime: Runtime, user: User) -> None:
        self.session, self.runtime, self.user = session, runtime, user
        self.billing = Billing(session, runtime)
        self.repo = self.billing.repo

    def _success_url(self, what: str) -> str:
        return f"{self.runtime.settings.public_url}/billing?{what}=paid"

    async def subscription(self) -> Subscription | None:
        return await self.repo.live_subscription(self.user.id)

    async def subscribe(self, plan_id: str) -> Payment:
        plan = self.runtime.plans.plan(plan_id)
        if plan is None:
            raise NotFound("No such plan", code="plan_not_found")
        if plan.free:
            raise AppError(
                f"{plan.name} is free: cancel your subscription to return to it",
                code="plan_is_free",
                status=422,
            )
        now = self.runtime.clock.now()
        # One subscribe at a time per buyer, whichever the provider: two at once both found
        # no subscription to lock and both inserted one (the second a 500 on the unique
        # index of live subscriptions).
        await self.repo.lock_pages(self.user.id)
        live = await self.repo.live_subscription(self.user.id)
        if live is not None and live.status is not SubscriptionStatus.PENDING:
            raise Conflict(
                f"You are subscribed to {self.runtime.plans.of(live.plan).name} already; "
                "cancel it first",
                code="already_subscribed",
            )
        stripe = self.runtime.stripe
        if stripe is not None:
            # First: a page paid meanwhile is a subscription about to start, not one to end.
            await self._close_pages(
                stripe, now, f"subscribe to {plan.name} after that by cancelling it"
            )
        if live is not None:  # one waiting for its first payment: start over
            # At Stripe too, where a pending subscription (an incomplete first payment) would
            # otherwise go on billing the buyer for a plan they replaced.
            await self.billing.end_everywhere(live, now, f"replaced by {plan.name}")
            await self.session.flush()
        if stripe is not None:
            metadata = {"user_id": str(self.user.id), "plan": plan.id}
            session = await stripe.checkout_session(
                {
                    "mode": "subscription",
                    "client_reference_id": str(self.user.id),
                    "customer_email": self.user.email,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": "usd",
                                "unit_amount": plan.monthly_price_cents,
                                "recurring": {"interval": "month"},
                                "product_data": {"name": f"AIQLeads {plan.name}"},
                            },
                        }
                    ],
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": self._success_url("subscription"),
                    "cancel_url": f"{self.runtime.settings.public_url}/billing",
                }
            )
            self.session.add(
                PaymentPage(
                    id=uuid.uuid4(),
                    user_id=self.user.id,
                    plan=plan.id,
                    provider_ref=session.id,
                    status=PageStatus.OPEN,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._audit("billing.subscribe", now, plan=plan.id, provider="stripe")
            return Payment(None, session.url, None)
        subscription = Subscription(
            id=uuid.uuid4(),
            user_id=self.user.id,
            plan=plan.id,
            status=SubscriptionStatus.PENDING,
            provider=Provider.MANUAL,
            cancel_at_period_end=False,
            created_at=now,
            updated_at=now,
        )
        self.session.add(subscription)
        await self.session.flush()  # the invoice refers to it
        invoice = subscription_invoice(subscription, plan, now, Provider.MANUAL)
        self.session.add(invoice)
        await self.session.flush()
        self._audit("billing.subscribe", now, plan=plan.id, provider="manual")
        return Payment(invoice, None, subscription)

    async def _close_pages(self, stripe: StripeGateway, now: datetime, then: str) -> None:
        """Expire the buyer's earlier payment pages at Stripe before opening another or
        ending a pending subscription, so at most one can ever be paid and none is ended
        once paid; `409 subscription_paid` if one was paid already (its subscription starts
        when Stripe's events arrive; `then` says what the buyer may do after that)."""
        await self.repo.lock_pages(self.user.id)
        for page in await self.repo.open_pages(self.user.id):
            page.status = PageStatus(await stripe.expire_session(page.provider_ref))
            page.updated_at = now
            if page.status is PageStatus.COMPLETE:
                paid = self.runtime.plans.of(page.plan).name
                raise Conflict(
                    f"You have paid for {paid} already; it starts as soon as Stripe confirms "
                    f"the payment: {then}.",
                    code="subscription_paid",
                )

    async def cancel(self) -> Subscription:
        """Stop the subscription at the end of the paid period (one not yet paid stops now)."""
        now = self.runtime.clock.now()
        live = await self.repo.live_subscription(self.user.id)
        if live is None:
            raise NoSubscription("You have no subscription")
        if live.status is SubscriptionStatus.PENDING:
            if self.runtime.stripe is not None:
                await self._close_pages(self.runtime.stripe, now, "cancel it after that")
            await self.billing.end_everywhere(live, now, "cancelled before it was paid")
        elif not live.cancel_at_period_end:
            if live.provider is Provider.STRIPE:
                if self.runtime.stripe is None:
                    raise AppError(
                        "Stripe is not configured here", code="provider_not_configured", status=503
                    )
                assert live.provider_ref is not None
                await self.runtime.stripe.cancel_at_period_end(live.provider_ref)
            live.cancel_at_period_end = True
            live.updated_at = now
        self._audit("billing.cancel", now, subscription=str(live.id))
        return live

    async def buy_pack(self, pack: CreditPack) -> Payment:
        now = self.runtime.clock.now()
        stripe = self.runtime.stripe
        invoice = pack_invoice(
            pack, self.user.id, now, Provider.STRIPE if stripe is not None else Provider.MANUAL
        )
        if stripe is not None:
            session = await stripe.checkout_session(
                {
                    "mode": "payment",
                    "client_reference_id": str(self.user.id),
                    "customer_email": self.user.email,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": "usd",
                                "unit_amount": pack.price_cents,
                                "product_data": {"name": f"AIQLeads credits: {pack.name}"},
                            },
                        }
                    ],
                    "metadata": {
                        "user_id": str(self.user.id),
                        "invoice_id": str(invoice.id),
                        "credit_pack": pack.id,
                    },
                    "success_url": self._success_url("credits"),
                    "cancel_url": f"{self.runtime.settings.public_url}/billing",
                }
            )
            invoice.provider_ref = session.id
            invoice.checkout_url = session.url
        self.session.add(invoice)
        await self.session.flush()
        self._audit("billing.credit_pack", now, pack=pack.id, invoice=str(invoice.id))
        return Payment(invoice, invoice.checkout_url, None)

    async def invoice(self, invoice_id: uuid.UUID, operator: bool) -> Invoice:
        invoice = await self.repo.invoice(invoice_id)
        if invoice is None or (invoice.user_id != self.user.id and not operator):
            raise NotFound("No such invoice", code="invoice_not_found")
        return invoice

    def _audit(self, action: str, at: datetime, **detail: object) -> None:
        audit(
            self.session,
            actor_id=self.user.id,
            action=action,
            subject_type="user",
            subject_id=str(self.user.id),
            at=at,
            detail=dict(detail),
        )
