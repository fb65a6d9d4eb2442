"""Holding leads in a buyer's cart.

Adding a lead locks its row (PostgreSQL `FOR UPDATE`; SQLite has one writer at a time), ends
any hold on it that has lapsed, and holds it if a sale is left: an exclusive lead has one
holder, a shared one as many as its remaining sales. When the holds take every remaining sale
the lead becomes `held`, and it is `available` again when one ends. The price is the quote at
that moment (`PricingService.quote`), locked for the life of the hold. Two unique indexes back
the rules: one active hold of an exclusive lead, one active hold per buyer and lead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.checkout.models import Purchase
from aiqleads.demand.models import DemandKind
from aiqleads.kit.errors import AppError, Conflict, Forbidden, NotFound
from aiqleads.leads.lifecycle import LeadStatus, check_transition
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.notifications.service import notify
from aiqleads.pricing.service import PricingService
from aiqleads.runtime import Runtime

# What a hold may be extended to (from when it was placed; seed 001); each plan says which
# of these its buyers may use (billing/data/plans.json: Pro and Enterprise, all three).
EXTENSIONS = {"24h": timedelta(hours=24), "3d": timedelta(days=3), "7d": timedelta(days=7)}
EXPIRE_BATCH = 500
# Buyers hear that a hold is about to lapse this long before it does.
WARN_BEFORE = timedelta(minutes=5)


class LeadUnavailable(Conflict):
    code = "lead_unavailable"


@dataclass(frozen=True)
class CartItem:
    hold: Hold
    lead: Lead


async def _locked_lead(session: AsyncSession, lead_id: uuid.UUID) -> Lead | None:
    return await session.scalar(
        sa.select(Lead)
        .where(Lead.id == lead_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def active_holds(session: AsyncSession, lead_id: uuid.UUID) -> list[Hold]:
    return list(
        await session.scalars(
            sa.select(Hold).where(Hold.lead_id == lead_id, Hold.status == HoldStatus.ACTIVE)
        )
    )


def end_hold(hold: Hold, lead: Lead, status: HoldStatus, at: datetime) -> None:
    """End `hold` (the lead's row locked by the caller); a held lead is on sale again."""
    hold.status = status
    hold.ended_at = at
    if lead.status is LeadStatus.HELD and status is not HoldStatus.PURCHASED:
        check_transition(lead.status, LeadStatus.AVAILABLE)
        lead.status = LeadStatus.AVAILABLE
        lead.status_changed_at = at


def lapse(session: AsyncSession, hold: Hold, lead: Lead, at: datetime) -> None:
    """End a hold whose time is up (the lead's row locked by the caller), in the audit log as
    the system's doing: an exclusive lead goes back on sale here."""
    end_hold(hold, lead, HoldStatus.EXPIRED, at)
    audit(
        session,
        actor_id=None,
        action="cart.lapse",
        subject_type="lead",
        subject_id=str(hold.lead_id),
        at=at,
        detail={"hold": str(hold.id), "buyer": str(hold.buyer_id)},
    )


class CartService:
    def __init__(self, session: AsyncSession, runtime: Runtime, buyer: User) -> None:
        self.session, self.runtime, self.buyer = session, runtime, buyer

    def _audit(self, action: str, hold: Hold, at: datetime, **detail: object) -> None:
        """Every change of who holds a lead, in the audit log."""
        audit(
            self.session,
            actor_id=self.buyer.id,
            action=action,
            subject_type="lead",
            subject_id=str(hold.lead_id),
            at=at,
            detail={"hold": str(hold.id), **detail},
        )

    def _hold_length(self) -> timedelta:
        return timedelta(minutes=self.runtime.settings.cart_hold_minutes)

    async def items(self) -> list[CartItem]:
        """The buyer's holds that have not lapsed, oldest first."""
        now = self.runtime.clock.now()
        rows = await self.session.execute(
            sa.select(Hold, Lead)
            .join(Lead, Lead.id == Hold.lead_id)
            .where(
                Hold.buyer_id == self.buyer.id,
                Hold.status == HoldStatus.ACTIVE,
                Hold.expires_at > now,
            )
            .order_by(Hold.created_at, Hold.id)
        )
        return [CartItem(h, lead) for h, lead in rows.all()]

    async def add(self, lead_id: uuid.UUID) -> CartItem:
        now = self.runtime.clock.now()
        lead = await _locked_lead(self.session, lead_id)
        if lead is None:
            raise NotFound("No such lead", code="lead_not_found")
        bought = await self.session.scalar(
            sa.select(Purchase.id).where(
                Purchase.lead_id == lead.id, Purchase.buyer_id == self.buyer.id
            )
        )
        if bought is not None:
            raise Conflict("You bought this lead already", code="already_bought")
        holds = await active_holds(self.session, lead.id)
        for lapsed in [h for h in holds if h.expires_at <= now]:
            lapse(self.session, lapsed, lead, now)
        holds = [h for h in holds if h.expires_at > now]
        if any(h.buyer_id == self.buyer.id for h in holds):
            raise Conflict("This lead is in your cart already", code="already_in_cart")
        if lead.status is not LeadStatus.AVAILABLE or lead.sales_count + len(holds) >= (
            lead.max_sales
        ):
            raise LeadUnavailable("This lead is not available now")
        quote = await PricingService(self.session, self.runtime).explained(lead, self.buyer.plan)
        hold = Hold(
            id=uuid.uuid4(),
            lead_id=lead.id,
            buyer_id=self.buyer.id,
            exclusive=lead.exclusivity is Exclusivity.EXCLUSIVE,
            status=HoldStatus.ACTIVE,
            price_cents=quote.price_cents,
            config_version=quote.config_version,
            quote=quote.model_dump(mode="json"),
            created_at=now,
            expires_at=now + self._hold_length(),
        )
        self.session.add(hold)
        if lead.sales_count + len(holds) + 1 >= lead.max_sales:
            check_transition(lead.status, LeadStatus.HELD)
            lead.status = LeadStatus.HELD
            lead.status_changed_at = now
        try:
            await self.session.flush()
        except IntegrityError as exc:  # the unique indexes: another hold won the lead
            raise LeadUnavailable("This lead is not available now") from exc
        self._audit("cart.hold", hold, now, price_cents=hold.price_cents)
        self.runtime.demand.record(
            DemandKind.CART_ADD,
            user_id=self.buyer.id,
            lead_id=lead.id,
            market=lead.market,
            lead_kind=lead.kind,
            property_type=lead.property_type,
        )
        return CartItem(hold, lead)

    async def _held(self, lead_id: uuid.UUID) -> tuple[Hold, Lead]:
        """The buyer's active hold on the lead (lapsed or not), both locked (a warning run
        holding the hold finishes first, so an extension clears the warning it made)."""
        lead = await _locked_lead(self.session, lead_id)
        hold = await self.session.scalar(
            sa.select(Hold)
            .where(
                Hold.lead_id == lead_id,
                Hold.buyer_id == self.buyer.id,
                Hold.status == HoldStatus.ACTIVE,
            )
            .with_for_update()
        )
        if lead is None or hold is None:
            raise NotFound("This lead is not in your cart", code="not_in_cart")
        return hold, lead

    async def _mine(self, lead_id: uuid.UUID) -> tuple[Hold, Lead]:
        """The buyer's live hold on the lead; `409 hold_expired` (the lapse saved) if it has
        lapsed."""
        now = self.runtime.clock.now()
        hold, lead = await self._held(lead_id)
        if hold.expires_at <= now:
            lapse(self.session, hold, lead, now)
            raise AppError(
                "Your hold on this lead has lapsed", code="hold_expired", status=409, commit=True
            )
        return hold, lead

    async def remove(self, lead_id: uuid.UUID) -> None:
        hold, lead = await self._held(lead_id)
        now = self.runtime.clock.now()
        if hold.expires_at <= now:
            # Lapsed before the expiry job saw it: out of the cart, as the buyer asked.
            lapse(self.session, hold, lead, now)
            return
        end_hold(hold, lead, HoldStatus.RELEASED, now)
        self._audit("cart.release", hold, now)

    async def extend(self, lead_id: uuid.UUID, duration: str) -> CartItem:
        plan = self.runtime.plans.of(self.buyer.plan)
        if duration not in plan.hold_extensions:
            raise Forbidden(
                f"The {plan.name} plan cannot extend a hold to {duration}",
                code="plan_cannot_extend",
            )
        hold, lead = await self._mine(lead_id)
        until = hold.created_at + EXTENSIONS[duration]
        if until > hold.expires_at:
            hold.expires_at = until
            hold.warned_at = None  # the new end is announced before it comes, too
        self._audit(
            "cart.extend", hold, self.runtime.clock.now(), expires_at=hold.expires_at.isoformat()
        )
        return CartItem(hold, lead)


async def expire_lapsed(runtime: Runtime) -> int:
    """End every active hold whose time is up (a batch per transaction); returns how many."""
    ended = 0
    while True:
        now = runtime.clock.now()
        async with runtime.transaction() as session:
            lapsed = list(
                await session.scalars(
                    sa.select(Hold)
                    .where(Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
                    .order_by(Hold.lead_id)
                    .limit(EXPIRE_BATCH)
                )
            )
            for hold in lapsed:
                lead = await _locked_lead(session, hold.lead_id)
                await session.refresh(hold)
                if lead is None or hold.status is not HoldStatus.ACTIVE or hold.expires_at > now:
                    continue  # ended or extended meanwhile
                lapse(session, hold, lead, now)
                ended += 1
        if len(lapsed) < EXPIRE_BATCH:
            return ended


def _local_time(at: datetime, time_zone: str) -> str:
    """`at` as the buyer reads a clock ("14:05 MST"; UTC if their zone is unknown here)."""
    try:
        zone: tzinfo = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return f"{at.astimezone(zone):%H:%M %Z}"


async def warn_lapsing(runtime: Runtime) -> int:
    """Tell each buyer whose hold lapses within WARN_BEFORE (once per hold, in-app and e-mail
    per their `hold_expiring` preference); returns how many holds were announced."""
    now = runtime.clock.now()
    async with runtime.transaction() as session:
        rows = (
            await session.execute(
                sa.select(Hold, Lead, User)
                .join(Lead, Lead.id == Hold.lead_id)
                .join(User, User.id == Hold.buyer_id)
                .where(
                    Hold.status == HoldStatus.ACTIVE,
                    Hold.warned_at.is_(None),
                    Hold.expires_at > now,
                    Hold.expires_at <= now + WARN_BEFORE,
                )
                .order_by(Hold.expires_at)
                .limit(EXPIRE_BATCH)
                # Two runs at once (PostgreSQL) warn each hold once, and an extension made
                # meanwhile waits for this run, then clears warned_at for its new end.
                .with_for_update(of=Hold, skip_locked=True)
            )
        ).all()
        for hold, lead, buyer in rows:
            minutes = max(1, round((hold.expires_at - now).total_seconds() / 60))
            place = ", ".join(p for p in (lead.city, lead.state) if p) or "your cart"
            await notify(
                session,
                runtime,
                buyer,
                topic="hold_expiring",
                kind="hold_expiring",
                title=f"A lead in your cart is released in {minutes} min",
                body=(
                    f"Your hold on a {lead.kind.replace('_', ' ')} lead in {place} ends at "
                    f"{_local_time(hold.expires_at, buyer.time_zone)}. Check out before then "
                    "to keep it."
                ),
                data={"lead_id": str(lead.id), "expires_at": hold.expires_at.isoformat()},
            )
            hold.warned_at = now
    return len(rows)
