"""Plans, subscriptions, credit packs and invoices; the Stripe webhook; operators' invoices."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.deps import (
    AccountReader,
    AccountWriter,
    AdminUser,
    CurrentPrincipal,
    Idempotent,
)
from aiqleads.accounts.models import User
from aiqleads.billing.events import InvalidEvent, stored_event
from aiqleads.billing.models import Invoice, InvoiceStatus
from aiqleads.billing.provider import SIGNATURE_HEADER, verify_signature
from aiqleads.billing.render import invoice_html, invoice_pdf
from aiqleads.billing.repository import BillingRepository
from aiqleads.billing.schemas import (
    CreditPackOut,
    CurrentPlanOut,
    InvoiceOut,
    PaymentOut,
    PlanOut,
    PlansOut,
    SubscribeIn,
    SubscriptionOut,
    WebhookAck,
)
from aiqleads.billing.service import Billing, BillingService
from aiqleads.billing.tasks import APPLY_EVENT_JOB
from aiqleads.kit.body import json_body, raw_body
from aiqleads.kit.db import defer_job
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.errors import AppError, NotFound
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.pricing.engine import plan_discount
from aiqleads.pricing.service import PricingService

plans = APIRouter(tags=["billing"])
router = APIRouter(prefix="/billing", tags=["billing"])
admin = APIRouter(prefix="/admin/invoices", tags=["admin: billing"])
webhook = APIRouter(prefix="/webhooks", tags=["webhooks"])

Limit = Annotated[int, Query(ge=1, le=100)]


@plans.get("/plans", response_model=PlansOut)
async def list_plans(session: SessionDep, runtime: RuntimeDep) -> PlansOut:
    """Plans and credit packs (no sign-in needed): prices, monthly credits, hold rights, API
    limits, and each market's discount on lead prices."""
    pricing = PricingService(session, runtime)
    configs = {m.slug: (await pricing.configs.latest(m.slug))[1] for m in runtime.markets.all()}
    return PlansOut(
        plans=[
            PlanOut(
                **p.model_dump(),
                lead_discounts={m: plan_discount(c, p.id) for m, c in configs.items()},
            )
            for p in runtime.plans.plans()
        ],
        credit_packs=[CreditPackOut(**c.model_dump()) for c in runtime.plans.packs()],
        payment_provider="stripe" if runtime.stripe is not None else "manual",
    )


@router.get("/subscription", response_model=CurrentPlanOut)
async def current(user: AccountReader, session: SessionDep, runtime: RuntimeDep) -> CurrentPlanOut:
    """Your plan and your subscription (none on Basic)."""
    live = await BillingService(session, runtime, user).subscription()
    return CurrentPlanOut(
        plan=user.plan,
        subscription=SubscriptionOut.model_validate(live) if live is not None else None,
    )


@router.post("/subscribe", response_model=PaymentOut, status_code=status.HTTP_201_CREATED)
async def subscribe(
    body: SubscribeIn,
    user: AccountWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: Idempotent,
) -> PaymentOut:
    """Subscribe to Pro or Enterprise: pay on Stripe's page (`checkout_url`), or, without
    Stripe, an invoice an operator marks paid. The plan starts when it is paid."""
    payment = await BillingService(session, runtime, user).subscribe(body.plan)
    out = PaymentOut.of(
        runtime.stripe is not None, payment.checkout_url, payment.invoice, payment.subscription
    )
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out


@router.post("/cancel", response_model=SubscriptionOut)
async def cancel(
    user: AccountWriter, session: SessionDep, runtime: RuntimeDep, idem: Idempotent
) -> SubscriptionOut:
    """Stop your subscription at the end of the paid period (you keep your credits)."""
    out = SubscriptionOut.model_validate(await BillingService(session, runtime, user).cancel())
    await idem.complete(session, status.HTTP_200_OK, out)
    return out


@router.post(
    "/credit-packs/{pack_id}/checkout",
    response_model=PaymentOut,
    status_code=status.HTTP_201_CREATED,
)
async def buy_credits(
    pack_id: str, user: AccountWriter, session: SessionDep, runtime: RuntimeDep, idem: Idempotent
) -> PaymentOut:
    """Buy a credit pack: Stripe's payment page, or a manual invoice."""
    pack = runtime.plans.pack(pack_id)
    if pack is None:
        raise NotFound("No such credit pack", code="credit_pack_not_found")
    payment = await BillingService(session, runtime, user).buy_pack(pack)
    out = PaymentOut.of(runtime.stripe is not None, payment.checkout_url, payment.invoice, None)
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out


@router.get("/invoices", response_model=Page[InvoiceOut])
async def my_invoices(
    user: AccountReader, session: SessionDep, cursor: str | None = None, limit: Limit = 50
) -> Page[InvoiceOut]:
    """Your invoices and receipts, newest first."""
    return await _page(session, user.id, None, cursor, limit)


async def _page(
    session: AsyncSession,
    user_id: uuid.UUID | None,
    state: InvoiceStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[InvoiceOut]:
    rows = await BillingRepository(session).invoices(
        user_id=user_id,
        status=state,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    return page_of(rows, limit, InvoiceOut.of, lambda i: (i.created_at, i.id))


async def _owned_invoice(
    invoice_id: uuid.UUID,
    reader: AccountReader,
    principal: CurrentPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
) -> tuple[Invoice, User]:
    """The invoice, to its owner (`account:read`) or an operator; 404 to anyone else."""
    invoice = await BillingService(session, runtime, principal.user).invoice(
        invoice_id, principal.operator
    )
    owner = await session.get(User, invoice.user_id)
    assert owner is not None
    return invoice, owner


OwnedInvoice = Annotated[tuple[Invoice, User], Depends(_owned_invoice)]


@router.get("/invoices/{invoice_id}.html", response_class=Response)
async def invoice_as_html(found: OwnedInvoice) -> Response:
    """The invoice (or receipt) as a page to print."""
    return Response(invoice_html(*found), media_type="text/html; charset=utf-8")


@router.get("/invoices/{invoice_id}.pdf", response_class=Response)
async def invoice_as_pdf(found: OwnedInvoice) -> Response:
    """The invoice (or receipt) as a PDF."""
    invoice, owner = found
    return Response(
        invoice_pdf(invoice, owner),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice.number}.pdf"'},
    )


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
async def invoice(found: OwnedInvoice) -> InvoiceOut:
    return InvoiceOut.of(found[0])


# Operators --------------------------------------------------------------------------


@admin.get("", response_model=Page[InvoiceOut])
async def all_invoices(
    operator: AdminUser,
    session: SessionDep,
    status: InvoiceStatus | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[InvoiceOut]:
    """Everyone's invoices, newest first (`status=open`: the manual ones waiting for money)."""
    return await _page(session, None, status, cursor, limit)


@admin.post("/{invoice_id}/mark-paid", response_model=InvoiceOut)
async def mark_paid(
    invoice_id: uuid.UUID,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: Idempotent,
) -> InvoiceOut:
    """The money of a manual invoice arrived: its credits are granted and its plan starts
    (audited)."""
    out = InvoiceOut.of(await Billing(session, runtime).mark_paid(invoice_id, operator))
    await idem.complete(session, status.HTTP_200_OK, out)
    return out


# Stripe -----------------------------------------------------------------------------


async def _verified_event(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The event in the body, once its `Stripe-Signature` checks out (before any database
    work)."""
    secret = runtime.settings.stripe_webhook_secret
    if secret is None:
        raise AppError("Stripe is not configured here", code="provider_not_configured", status=503)
    body = await raw_body(request)
    verify_signature(
        body, request.headers.get(SIGNATURE_HEADER), secret.get_secret_value(), runtime.clock.now()
    )
    payload = json_body(body)
    if not isinstance(payload, dict):
        raise AppError("The body is not a Stripe event", code="invalid_event", status=400)
    return payload


@webhook.post("/stripe", response_model=WebhookAck)
async def stripe_webhook(
    payload: Annotated[dict[str, Any], Depends(_verified_event)],
    session: SessionDep,
    runtime: RuntimeDep,
) -> WebhookAck:
    """Stripe's events: stored once each (a redelivery is answered 200 as a duplicate) and
    applied in the background."""
    try:
        row = stored_event(payload, runtime.clock.now())
    except InvalidEvent as exc:
        raise AppError(str(exc), code="invalid_event", status=400) from exc
    stored = await BillingRepository(session).store_event(row)
    if stored:
        defer_job(session, APPLY_EVENT_JOB, {"event_id": row["id"]})
    return WebhookAck(duplicate=not stored)
