"""Checkout, and the buyer's purchased leads (one by one, paged, or as CSV)."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from aiqleads.accounts.deps import IdempotentRequired, LeadBuyer, LeadReader, LeadViewer
from aiqleads.checkout.models import PurchaseStatus
from aiqleads.checkout.repository import CheckoutRepository
from aiqleads.checkout.schemas import CheckoutIn, CheckoutOut, PurchaseOut
from aiqleads.checkout.service import Bought, CheckoutService
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.pagination import Page, decode_cursor, page_of
from aiqleads.search.service import present

router = APIRouter(tags=["checkout"])


def _out(item: Bought) -> PurchaseOut:
    purchase = item.purchase
    return PurchaseOut(
        id=purchase.id,
        order_id=purchase.order_id,
        status=purchase.status,
        price_cents=purchase.price_cents,
        purchased_at=purchase.created_at,
        refunded_at=purchase.refunded_at,
        lead=present(item.lead, revealed=purchase.status is PurchaseStatus.PAID),
    )


@router.post("/checkout", response_model=CheckoutOut, status_code=status.HTTP_201_CREATED)
async def checkout(
    buyer: LeadBuyer,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: IdempotentRequired,
    body: CheckoutIn | None = None,
) -> CheckoutOut:
    """Buy everything in your cart, at the prices locked when you added it, with your
    credits: all of it or none of it. Needs an `Idempotency-Key` (a retry with the same key
    is answered, never charged again)."""
    expected = body.expected_total_cents if body is not None else None
    done = await CheckoutService(session, runtime, buyer).checkout(expected)
    out = CheckoutOut(
        order_id=done.order.id,
        total_cents=done.order.total_cents,
        credits_spent=done.order.total_cents,
        balance=done.balance,
        invoice_id=done.receipt.id,
        items=[_out(i) for i in done.items],
    )
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out


@router.get("/purchases", response_model=Page[PurchaseOut])
async def purchases(
    buyer: LeadReader,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[PurchaseOut]:
    """Your purchased leads, newest first, with their contact details."""
    after = decode_cursor(cursor) if cursor else None
    rows = await CheckoutRepository(session).purchases(buyer.id, after, limit + 1)
    return page_of(rows, limit, lambda r: _out(Bought(*r)), lambda r: (r[0].created_at, r[0].id))


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"); phone numbers in E.164
# ("+17025550143") and plain numbers are data, not formulas.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")

CSV_COLUMNS = (
    "purchase_id", "purchased_at", "status", "price_cents", "lead_id", "kind", "first_name",
    "last_name", "phone", "email", "address_line1", "address_line2", "city", "state",
    "postal_code", "latitude", "longitude", "property_type", "beds", "baths",
    "living_area_sqft", "year_built", "list_price_cents", "days_on_market", "parcel_number",
    "consent_captured_at", "consent_url", "consent_text",
)  # fmt: skip


def _cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    if _FORMULA.match(text) and not _NUMBER.match(text):
        return "'" + text
    return text


@router.get("/purchases/export.csv", response_class=StreamingResponse)
async def export_csv(buyer: LeadReader, runtime: RuntimeDep) -> StreamingResponse:
    """All your purchased leads as CSV (UTF-8, one row per lead, contact details included;
    refunded leads are listed without them)."""

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        async with runtime.transaction(write=False) as session:
            async for purchase, lead in CheckoutRepository(session).stream_purchases(buyer.id):
                shown = purchase.status is PurchaseStatus.PAID
                values = {
                    "purchase_id": purchase.id,
                    "purchased_at": purchase.created_at,
                    "status": purchase.status.value,
                    "price_cents": purchase.price_cents,
                    "lead_id": lead.id,
                    "kind": lead.kind,
                }
                for column in CSV_COLUMNS:
                    if column not in values:
                        values[column] = getattr(lead, column) if shown else None
                writer.writerow([_cell(values[c]) for c in CSV_COLUMNS])
                if out.tell() > 64_000:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="aiqleads-purchases.csv"'},
    )


@router.get("/purchases/{purchase_id}", response_model=PurchaseOut)
async def purchase(
    purchase_id: uuid.UUID, viewer: LeadViewer, session: SessionDep, runtime: RuntimeDep
) -> PurchaseOut:
    """One purchase with its lead (yours; operators see any)."""
    service = CheckoutService(session, runtime, viewer.user)
    return _out(await service.purchase(purchase_id, viewer.operator))
