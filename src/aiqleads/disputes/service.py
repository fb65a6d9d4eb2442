"""Disputes: filed by a buyer within the window, checked at once, refunded when clear.

A dispute whose own evidence confirms the claim (disputes.evidence) is approved on the spot,
as long as the buyer's automatic refunds of the last `AIQLEADS_DISPUTE_WINDOW_DAYS` stay
within a share of their purchases of those days, the ones they can still dispute
(`AIQLEADS_DISPUTE_AUTO_APPROVE_PERCENT`, rounded up, as lead sellers cap returns); anything
else waits for an operator. An approved dispute refunds exactly what was paid, by a
reversing ledger transaction whose reference is the purchase, so it is refunded once at most;
the buyer loses the lead's details, and the lead is withdrawn from sale.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.billing.service import money
from aiqleads.cart.models import HoldStatus
from aiqleads.cart.service import active_holds, end_hold
from aiqleads.checkout.models import Purchase, PurchaseStatus
from aiqleads.disputes import evidence
from aiqleads.disputes.models import Dispute, DisputeReason, DisputeStatus
from aiqleads.disputes.repository import DisputeRepository
from aiqleads.kit import idempotency
from aiqleads.kit.errors import AppError, Conflict, NotFound
from aiqleads.leads.lifecycle import LeadStatus, check_transition
from aiqleads.leads.models import Lead
from aiqleads.ledger.models import AccountKind, TransactionKind
from aiqleads.ledger.service import Ledger, Leg
from aiqleads.markets.catalog import DEFAULT_FRAUD_THRESHOLD
from aiqleads.notifications.service import notify
from aiqleads.runtime import Runtime
from aiqleads.search.service import present


class DisputeService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session, self.runtime = session, runtime
        self.repo = DisputeRepository(session)

    async def file(
        self, buyer: User, purchase_id: uuid.UUID, reason: DisputeReason, note: str
    ) -> Dispute:
        """The buyer disputes one purchase; clear cases within the cap are refunded now."""
        now = self.runtime.clock.now()
        await self.repo.lock_buyer(buyer.id)
        purchase = await self.repo.purchase(purchase_id)
        if purchase is None or purchase.buyer_id != buyer.id:
            raise NotFound("No such purchase", code="purchase_not_found")
        if await self.repo.of_purchase(purchase.id) is not None:
            raise Conflict("This purchase is disputed already", code="already_disputed")
        if purchase.status is not PurchaseStatus.PAID:
            raise Conflict("This purchase was refunded already", code="already_refunded")
        window = timedelta(days=self.runtime.settings.dispute_window_days)
        if now > purchase.created_at + window:
            raise AppError(
                f"Purchases can be disputed for {window.days} days after buying",
                code="dispute_window_closed",
                status=422,
                extra={"disputable_until": (purchase.created_at + window).isoformat()},
            )
        lead = await self.repo.lead(purchase.lead_id)
        assert lead is not None
        market = self.runtime.markets.get(lead.market) if lead.market else None
        threshold = market.fraud_threshold if market is not None else DEFAULT_FRAUD_THRESHOLD
        earlier = await self.repo.earlier_candidates(purchase, lead)
        approved = await self.repo.approved_in_review(lead.id)
        findings = evidence.gather(lead, earlier, threshold, approved)
        dispute = Dispute(
            id=uuid.uuid4(),
            purchase_id=purchase.id,
            buyer_id=buyer.id,
            lead_id=lead.id,
            reason=reason,
            note=note,
            status=DisputeStatus.OPEN,
            evidence=[f.as_json() for f in findings],
            auto_decided=False,
            refund_cents=0,
            created_at=now,
        )
        self.session.add(dispute)
        await self.session.flush()
        self._audit(buyer.id, "disputes.file", dispute, now, reason=reason.value)
        if evidence.is_clear(reason, findings):
            used, allowance = await self._allowance(buyer.id, now, window)
            if used < allowance:
                dispute.auto_decided = True
                await self._approve(
                    dispute, purchase, lead, buyer, None, "the evidence confirms it"
                )
            else:
                dispute.evidence = [
                    *dispute.evidence,
                    evidence.Finding(
                        "allowance",
                        False,
                        f"clear, but {used} of the {allowance} automatic refunds your purchases "
                        f"of the last {window.days} days allow are used: an operator decides",
                    ).as_json(),
                ]
        return dispute

    async def _allowance(
        self, buyer_id: uuid.UUID, now: datetime, window: timedelta
    ) -> tuple[int, int]:
        """(automatic refunds within the dispute window, how many the purchases that can still
        be disputed allow). A rolling window, not a calendar month: a purchase counts for as
        long as it can be disputed, so a dispute on the 1st of the month is not capped at 0."""
        since = now - window
        purchases = await self.repo.purchases_since(buyer_id, since)
        allowance = math.ceil(purchases * self.runtime.settings.dispute_auto_approve_percent / 100)
        return await self.repo.auto_refunds_since(buyer_id, since), allowance

    async def decide(
        self, dispute_id: uuid.UUID, approve: bool, reason: str, operator: User
    ) -> Dispute:
        dispute = await self.repo.dispute(dispute_id, lock=True)
        if dispute is None:
            raise NotFound("No such dispute", code="dispute_not_found")
        if dispute.status is not DisputeStatus.OPEN:
            raise Conflict(f"This dispute is {dispute.status.value} already", code="decided")
        buyer = await self.session.get(User, dispute.buyer_id)
        purchase = await self.repo.purchase(dispute.purchase_id)
        lead = await self.repo.lead(dispute.lead_id)
        assert buyer is not None
        assert purchase is not None
        assert lead is not None
        if approve:
            await self._approve(dispute, purchase, lead, buyer, operator.id, reason)
            return dispute
        now = self.runtime.clock.now()
        dispute.status = DisputeStatus.REJECTED
        dispute.decided_at = now
        dispute.decided_by = operator.id
        dispute.decision_reason = reason
        self._audit(operator.id, "disputes.reject", dispute, now, reason=reason)
        await notify(
            self.session,
            self.runtime,
            buyer,
            topic="purchase_receipts",
            kind="dispute_rejected",
            title="Your dispute was not accepted",
            body=f"We looked at your dispute of lead {lead.id} and did not accept it: {reason}",
            data={"dispute_id": str(dispute.id)},
        )
        return dispute

    async def _mask_replays(self, buyer: User, purchase: Purchase, lead: Lead) -> None:
        """The checkout answer kept for its Idempotency-Key (24 h) shows the lead as bought;
        a replay after the refund must show it as the API now does: masked."""
        masked = present(lead, revealed=False).model_dump(mode="json")
        item_id = str(purchase.id)

        def mask(body: dict[str, Any]) -> dict[str, Any]:
            items = [
                {**item, "lead": masked} if item.get("id") == item_id else item
                for item in body.get("items", [])
            ]
            return {**body, "items": items}

        await idempotency.rewrite_answers(
            self.session, str(buyer.id), "order_id", str(purchase.order_id), mask
        )

    async def _approve(
        self,
        dispute: Dispute,
        purchase: Purchase,
        lead: Lead,
        buyer: User,
        operator_id: uuid.UUID | None,
        reason: str,
    ) -> None:
        """Refund what was paid (once: the ledger refuses a second refund of a purchase), take
        the lead's details back from the buyer, and withdraw the lead."""
        now = self.runtime.clock.now()
        ledger = Ledger(self.session)
        if purchase.price_cents:
            revenue, credits = await ledger.accounts(
                now, (AccountKind.REVENUE, None), (AccountKind.CREDITS, buyer.id)
            )
            await ledger.post(
                TransactionKind.REFUND,
                [Leg(revenue, -purchase.price_cents), Leg(credits, purchase.price_cents)],
                now,
                reference=str(purchase.id),
                memo=f"Refund of lead {lead.id}: {dispute.reason.value.replace('_', ' ')}",
                actor_id=operator_id,
            )
        purchase.status = PurchaseStatus.REFUNDED
        purchase.refunded_at = now
        dispute.status = DisputeStatus.APPROVED
        dispute.refund_cents = purchase.price_cents
        dispute.decided_at = now
        dispute.decided_by = operator_id
        dispute.decision_reason = reason
        if lead.status is not LeadStatus.WITHDRAWN:
            for hold in await active_holds(self.session, lead.id):  # others' carts
                end_hold(hold, lead, HoldStatus.RELEASED, now)
            check_transition(lead.status, LeadStatus.WITHDRAWN)
            lead.status = LeadStatus.WITHDRAWN
            lead.status_changed_at = now
        await self._mask_replays(buyer, purchase, lead)
        self._audit(
            operator_id,
            "disputes.approve",
            dispute,
            now,
            refund_cents=purchase.price_cents,
            automatic=dispute.auto_decided,
        )
        await notify(
            self.session,
            self.runtime,
            buyer,
            topic="purchase_receipts",
            kind="dispute_refunded",
            title=f"Refunded: {money(purchase.price_cents)}",
            body=f"Your dispute of lead {lead.id} was accepted ({reason}); "
            f"{purchase.price_cents:,} credits are back in your balance.",
            data={"dispute_id": str(dispute.id), "credits": purchase.price_cents},
        )

    def _audit(
        self,
        actor_id: uuid.UUID | None,
        action: str,
        dispute: Dispute,
        at: datetime,
        **detail: object,
    ) -> None:
        audit(
            self.session,
            actor_id=actor_id,
            action=action,
            subject_type="lead",
            subject_id=str(dispute.lead_id),
            at=at,
            detail={"dispute": str(dispute.id), "purchase": str(dispute.purchase_id), **detail},
        )

    async def mine(self, buyer: User, dispute_id: uuid.UUID, operator: bool) -> Dispute:
        dispute = await self.repo.dispute(dispute_id)
        if dispute is None or (dispute.buyer_id != buyer.id and not operator):
            raise NotFound("No such dispute", code="dispute_not_found")
        return dispute
