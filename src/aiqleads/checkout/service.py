"""Checkout: everything a buyer holds, bought at once or not at all.

The leads are locked first (in id order, as cart adds lock them), then the buyer's holds are
read afresh, so a checkout that waited on another sees what that one did: a second checkout of
the same cart finds it empty, and a hold that lapsed at this instant is not bought. The debit
is one ledger transaction whose reference is the order; its UPDATE of the buyer's credits
(refused below zero) is the last statement before the commit, so that row stays locked for as
short a time as possible. Everything else a sale causes is a row in the same transaction:
purchases, lead statuses, audit entries, demand events, the receipt (invoice and e-mail
through the outbox), queued in memory and sent together as the transaction commits
(`kit.writes`), so a crash before the commit leaves nothing and one after it loses nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.billing.models import Invoice
from aiqleads.billing.service import money, purchase_receipt
from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.cart.service import LeadUnavailable, lapse
from aiqleads.checkout.models import Order, Purchase, PurchaseStatus
from aiqleads.checkout.repository import CheckoutRepository
from aiqleads.demand.models import DemandEvent, DemandKind
from aiqleads.kit.errors import Conflict, Invalid, NotFound
from aiqleads.kit.writes import Writes, table_of, writes
from aiqleads.leads.lifecycle import LeadStatus, check_transition
from aiqleads.leads.models import Lead
from aiqleads.ledger.models import AccountKind, TransactionKind
from aiqleads.ledger.service import Ledger, Leg
from aiqleads.notifications.service import notify
from aiqleads.runtime import Runtime

SELLABLE = frozenset({LeadStatus.AVAILABLE, LeadStatus.HELD})


class CartEmpty(Invalid):
    code = "cart_empty"


@dataclass(frozen=True)
class Bought:
    purchase: Purchase
    lead: Lead


@dataclass(frozen=True)
class Checkout:
    order: Order
    items: list[Bought]
    receipt: Invoice
    balance: int


def _receipt_text(buyer: User, order: Order, items: list[Bought], dispute_days: int) -> str:
    """The buyer's receipt, with each lead's contact details: it is the lead's delivery."""
    lines = [
        f"Hello {buyer.name},",
        "",
        f"Thank you for your order {order.id} of {order.created_at:%Y-%m-%d %H:%M} UTC.",
        f"{len(items)} lead(s), {money(order.total_cents)} paid in credits.",
        "",
    ]
    for item in items:
        lead = item.lead
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or "(no name)"
        lines += [
            f"- {lead.kind.replace('_', ' ')} lead {lead.id}: {money(item.purchase.price_cents)}",
            f"  {name}",
            f"  phone {lead.phone or '-'}, e-mail {lead.email or '-'}",
            f"  {lead.address or '-'}",
        ]
    lines += [
        "",
        "Your purchased leads are listed under Purchases and can be exported as CSV.",
        f"A lead that is not what it claims can be disputed within {dispute_days} days for a "
        "refund.",
    ]
    return "\n".join(lines)


class CheckoutService:
    def __init__(self, session: AsyncSession, runtime: Runtime, buyer: User) -> None:
        self.session, self.runtime, self.buyer = session, runtime, buyer
        self.repo = CheckoutRepository(session)

    async def checkout(self, expected_total_cents: int | None = None) -> Checkout:
        """Buy every lead the buyer holds. `expected_total_cents`, when given, must be the
        cart's total now (`409 cart_changed` otherwise): the buyer pays what they saw."""
        now = self.runtime.clock.now()
        leads = await self.repo.lock_held_leads(self.buyer.id)
        if not leads:
            raise CartEmpty("Your cart is empty")
        holds = []
        for hold in await self.repo.active_holds(self.buyer.id, list(leads)):
            if hold.expires_at > now:
                holds.append(hold)
            else:  # lapsed at this instant: over, as GET /cart already shows
                lapse(self.session, hold, leads[hold.lead_id], now)
        if not holds:
            raise CartEmpty("Your cart is empty")
        total = sum(h.price_cents for h in holds)
        if expected_total_cents is not None and expected_total_cents != total:
            raise Conflict(
                "Your cart changed since you saw it",
                code="cart_changed",
                extra={"total_cents": total, "lead_ids": [str(h.lead_id) for h in holds]},
            )
        for hold in holds:
            if leads[hold.lead_id].status not in SELLABLE:
                raise LeadUnavailable(
                    "A lead in your cart is no longer on sale; remove it and check out again",
                    extra={"lead_id": str(hold.lead_id)},
                )

        order = Order(
            id=uuid.uuid4(),
            buyer_id=self.buyer.id,
            total_cents=total,
            item_count=len(holds),
            created_at=now,
        )
        queued = writes(self.session)
        queued.add(order)
        items = [self._sell(queued, order, hold, leads[hold.lead_id], now) for hold in holds]
        self._record_sales(queued, items, now)
        queued.insert(
            table_of(DemandEvent),
            [
                {
                    "id": uuid.uuid4(),
                    "kind": DemandKind.PURCHASE,
                    "user_id": self.buyer.id,
                    "lead_id": i.lead.id,
                    "market": i.lead.market,
                    "lead_kind": i.lead.kind,
                    "property_type": i.lead.property_type,
                    "detail": {"order_id": str(order.id)},
                    "created_at": now,
                }
                for i in items
            ],
        )
        receipt = queued.add(
            purchase_receipt(self.buyer, order, [(i.lead, i.purchase) for i in items])
        )
        await notify(
            self.session,
            self.runtime,
            self.buyer,
            topic="purchase_receipts",
            kind="purchase_receipt",
            title=f"Your receipt: {len(items)} lead(s) for {money(total)}",
            body=f"{len(items)} lead(s) bought for {money(total)} in credits (order "
            f"{order.id}); their details are under Purchases.",
            email_body=_receipt_text(
                self.buyer, order, items, self.runtime.settings.dispute_window_days
            ),
            data={"order_id": str(order.id), "total_cents": total},
            writes=queued,
        )
        # Last: the debit locks the buyer's credits until the commit (revenue is not locked).
        ledger = Ledger(self.session)
        credits, revenue = await ledger.accounts(
            now, (AccountKind.CREDITS, self.buyer.id), (AccountKind.REVENUE, None)
        )
        if total:
            await ledger.post(
                TransactionKind.PURCHASE,
                [Leg(credits, -total), Leg(revenue, total)],
                now,
                reference=str(order.id),
                memo=f"{len(items)} lead(s), order {order.id}",
                actor_id=self.buyer.id,
                writes=queued,
            )
            assert credits.balance is not None  # an agent's account caches its balance
            balance = credits.balance  # as the debit left it
        else:
            balance = await ledger.balance(credits)
        self.runtime.demand.signal({i.lead.market for i in items if i.lead.market})
        return Checkout(order, items, receipt, balance)

    def _sell(self, queued: Writes, order: Order, hold: Hold, lead: Lead, now: datetime) -> Bought:
        """Turn one hold into a purchase, in memory (`_record_sales` writes the holds and
        leads): the hold ends, the lead counts the sale (sold when no sale is left), and the
        change is audited."""
        purchase = queued.add(
            Purchase(
                id=uuid.uuid4(),
                lead_id=lead.id,
                buyer_id=self.buyer.id,
                order_id=order.id,
                hold_id=hold.id,
                exclusive=hold.exclusive,
                status=PurchaseStatus.PAID,
                price_cents=hold.price_cents,
                created_at=now,
            )
        )
        set_committed_value(hold, "status", HoldStatus.PURCHASED)
        set_committed_value(hold, "ended_at", now)
        set_committed_value(lead, "sales_count", lead.sales_count + 1)
        if lead.sales_count >= lead.max_sales:
            check_transition(lead.status, LeadStatus.SOLD)
            set_committed_value(lead, "status", LeadStatus.SOLD)
            set_committed_value(lead, "status_changed_at", now)
        audit(
            self.session,
            actor_id=self.buyer.id,
            action="checkout.purchase",
            subject_type="lead",
            subject_id=str(lead.id),
            at=now,
            detail={
                "order": str(order.id),
                "purchase": str(purchase.id),
                "hold": str(hold.id),
                "price_cents": purchase.price_cents,
                "sales_count": lead.sales_count,
            },
            writes=queued,
        )
        return Bought(purchase, lead)

    @staticmethod
    def _record_sales(queued: Writes, items: list[Bought], now: datetime) -> None:
        """Queue what `_sell` did in memory: the holds ended, each lead's sale counted (the
        rows are locked, so the count in memory is the row's), the sold-out leads sold."""
        queued.update(
            table_of(Hold),
            [i.purchase.hold_id for i in items],
            {"status": HoldStatus.PURCHASED, "ended_at": now},
        )
        leads = table_of(Lead)
        sold = [i.lead.id for i in items if i.lead.status is LeadStatus.SOLD]
        counted = [i.lead.id for i in items if i.lead.status is not LeadStatus.SOLD]
        queued.update(leads, counted, {}, increments={"sales_count": 1})
        queued.update(
            leads,
            sold,
            {"status": LeadStatus.SOLD, "status_changed_at": now},
            increments={"sales_count": 1},
        )

    async def purchase(self, purchase_id: uuid.UUID, operator: bool) -> Bought:
        """One purchase, to its buyer (or an operator); anyone else gets 404."""
        found = await self.repo.purchase(purchase_id)
        if found is None or (found[0].buyer_id != self.buyer.id and not operator):
            raise NotFound("No such purchase", code="purchase_not_found")
        return Bought(*found)
