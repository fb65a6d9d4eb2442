"""All SQL of billing: subscriptions, invoices and payment events."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.billing.models import (
    EventStatus,
    Invoice,
    InvoiceStatus,
    PageStatus,
    PaymentEvent,
    PaymentPage,
    Provider,
    Subscription,
    SubscriptionStatus,
)
from aiqleads.kit.dialect import lock_key, upsert

LIVE = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # subscriptions (read locked: requests and the provider's events change them)

    async def live_subscription(self, user_id: uuid.UUID) -> Subscription | None:
        return await self.session.scalar(
            sa.select(Subscription)
            .where(Subscription.user_id == user_id, Subscription.status.in_(LIVE))
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def subscription_by_ref(self, provider: Provider, ref: str) -> Subscription | None:
        return await self.session.scalar(
            sa.select(Subscription)
            .where(Subscription.provider == provider, Subscription.provider_ref == ref)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def lapsed_periods(self, now: datetime, limit: int) -> list[Subscription]:
        """Manual subscriptions whose paid period is over (to renew or to end)."""
        return list(
            await self.session.scalars(
                sa.select(Subscription)
                .where(
                    Subscription.provider == Provider.MANUAL,
                    Subscription.status == SubscriptionStatus.ACTIVE,
                    Subscription.current_period_end <= now,
                )
                .order_by(Subscription.current_period_end)
                .limit(limit)
                .with_for_update()
            )
        )

    async def grace_over(
        self, now: datetime, limit: int
    ) -> list[tuple[uuid.UUID, Provider, str | None]]:
        """Past-due subscriptions whose grace period is over: id, provider, provider's id."""
        rows = await self.session.execute(
            sa.select(Subscription.id, Subscription.provider, Subscription.provider_ref)
            .where(
                Subscription.status == SubscriptionStatus.PAST_DUE,
                Subscription.grace_until <= now,
            )
            .order_by(Subscription.grace_until)
            .limit(limit)
        )
        return [(i, p, r) for i, p, r in rows]

    async def subscription(self, subscription_id: uuid.UUID) -> Subscription | None:
        return await self.session.scalar(
            sa.select(Subscription)
            .where(Subscription.id == subscription_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    # subscription payment pages

    async def lock_pages(self, user_id: uuid.UUID) -> None:
        """Serialise one buyer's subscribe requests: each looks at their open pages, then
        opens one. (An advisory lock: the user's row is locked by credit grants.)"""
        await lock_key(self.session, f"payment_pages|{user_id}")

    async def open_pages(self, user_id: uuid.UUID) -> list[PaymentPage]:
        return list(
            await self.session.scalars(
                sa.select(PaymentPage)
                .where(PaymentPage.user_id == user_id, PaymentPage.status == PageStatus.OPEN)
                .order_by(PaymentPage.created_at)
            )
        )

    async def page_by_ref(self, ref: str) -> PaymentPage | None:
        return await self.session.scalar(
            sa.select(PaymentPage).where(PaymentPage.provider_ref == ref)
        )

    # invoices

    async def invoice(self, invoice_id: uuid.UUID, *, lock: bool = False) -> Invoice | None:
        query = sa.select(Invoice).where(Invoice.id == invoice_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def invoice_by_ref(self, provider: Provider, ref: str) -> Invoice | None:
        return await self.session.scalar(
            sa.select(Invoice)
            .where(Invoice.provider == provider, Invoice.provider_ref == ref)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def invoice_by_payment(self, payment_intent: str) -> Invoice | None:
        """The Stripe invoice Stripe's PaymentIntent paid, locked."""
        return await self.session.scalar(
            sa.select(Invoice)
            .where(Invoice.provider == Provider.STRIPE, Invoice.payment_intent == payment_intent)
            .order_by(Invoice.created_at)
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def open_invoices_of(self, subscription_id: uuid.UUID) -> list[Invoice]:
        return list(
            await self.session.scalars(
                sa.select(Invoice).where(
                    Invoice.subscription_id == subscription_id,
                    Invoice.status == InvoiceStatus.OPEN,
                )
            )
        )

    async def invoices(
        self,
        *,
        user_id: uuid.UUID | None,
        status: InvoiceStatus | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Invoice]:
        """Newest first; one user's, or everyone's for operators."""
        query = sa.select(Invoice)
        if user_id is not None:
            query = query.where(Invoice.user_id == user_id)
        if status is not None:
            query = query.where(Invoice.status == status)
        if after is not None:
            query = query.where(sa.tuple_(Invoice.created_at, Invoice.id) < after)
        query = query.order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(limit)
        return list(await self.session.scalars(query))

    # payment events

    async def store_event(self, event: dict[str, object]) -> bool:
        """Insert the event unless its id is stored already; True if this call stored it.
        Concurrent deliveries of one event: the database lets exactly one insert win."""
        dialect = self.session.get_bind().dialect.name
        stmt = (
            upsert(dialect, PaymentEvent.__table__)
            .values(event)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PaymentEvent.__table__.c.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def pending_event(self, event_id: str) -> PaymentEvent | None:
        """The event, locked, if it still waits to be applied."""
        return await self.session.scalar(
            sa.select(PaymentEvent)
            .where(PaymentEvent.id == event_id, PaymentEvent.status == EventStatus.PENDING)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def due_event_ids(self, now: datetime, limit: int) -> list[str]:
        return list(
            await self.session.scalars(
                sa.select(PaymentEvent.id)
                .where(
                    PaymentEvent.status == EventStatus.PENDING,
                    PaymentEvent.next_attempt_at <= now,
                )
                .order_by(PaymentEvent.created, PaymentEvent.id)
                .limit(limit)
            )
        )
