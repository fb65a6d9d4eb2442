"""The buyer's cart: leads held at a locked price until checkout or until the hold lapses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from aiqleads.accounts.deps import Idempotent, LeadBuyer, LeadReader
from aiqleads.cart.service import CartItem, CartService
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.search.schemas import LeadView
from aiqleads.search.service import present

router = APIRouter(prefix="/cart", tags=["cart"])


class CartItemOut(BaseModel):
    lead: LeadView  # masked until bought
    price_cents: int  # locked when added
    held_at: datetime
    expires_at: datetime


class CartOut(BaseModel):
    items: list[CartItemOut]
    total_cents: int


class AddIn(BaseModel):
    lead_id: uuid.UUID


class ExtendIn(BaseModel):
    duration: Literal["24h", "3d", "7d"]


def _out(item: CartItem) -> CartItemOut:
    return CartItemOut(
        lead=present(item.lead, revealed=False, price_cents=item.hold.price_cents),
        price_cents=item.hold.price_cents,
        held_at=item.hold.created_at,
        expires_at=item.hold.expires_at,
    )


@router.get("", response_model=CartOut)
async def cart(buyer: LeadReader, session: SessionDep, runtime: RuntimeDep) -> CartOut:
    """Your held leads and their locked prices."""
    items = [_out(i) for i in await CartService(session, runtime, buyer).items()]
    return CartOut(items=items, total_cents=sum(i.price_cents for i in items))


@router.post("/items", response_model=CartItemOut, status_code=status.HTTP_201_CREATED)
async def add(
    body: AddIn, buyer: LeadBuyer, session: SessionDep, runtime: RuntimeDep, idem: Idempotent
) -> CartItemOut:
    """Hold a lead for you at today's price, for your plan's hold length. `409
    lead_unavailable` if someone else holds or bought it (or every sale of a shared lead is
    taken)."""
    out = _out(await CartService(session, runtime, buyer).add(body.lead_id))
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out


@router.delete("/items/{lead_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove(
    lead_id: uuid.UUID, buyer: LeadBuyer, session: SessionDep, runtime: RuntimeDep, idem: Idempotent
) -> Response:
    """Take a lead out of your cart (it goes back on sale)."""
    await CartService(session, runtime, buyer).remove(lead_id)
    await idem.complete(session, status.HTTP_204_NO_CONTENT, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/items/{lead_id}/extend", response_model=CartItemOut)
async def extend(
    lead_id: uuid.UUID,
    body: ExtendIn,
    buyer: LeadBuyer,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: Idempotent,
) -> CartItemOut:
    """Pro and Enterprise: keep the hold for 24 hours, 3 days or 7 days from when you added it."""
    out = _out(await CartService(session, runtime, buyer).extend(lead_id, body.duration))
    await idem.complete(session, status.HTTP_200_OK, out)
    return out
