"""Operators' work on leads: read everything, review quarantined leads, merge and unmerge."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.cart.service import active_holds
from aiqleads.ingest.pipeline import LeadPipeline
from aiqleads.ingest.repository import IngestRepository
from aiqleads.ingest.service import STORE_LOCK
from aiqleads.kit.dialect import lock_key
from aiqleads.kit.errors import Conflict, NotFound
from aiqleads.leads.lifecycle import LeadStatus, check_transition
from aiqleads.leads.models import Lead, MatchStatus
from aiqleads.leads.repository import LeadRepository
from aiqleads.leads.schemas import LeadAdminOut, PossibleDuplicateOut, SourceRecordOut
from aiqleads.quality.models import LeadReview
from aiqleads.quality.service import active_fraud_model

if TYPE_CHECKING:
    from aiqleads.runtime import Runtime

_FIXED = frozenset({LeadStatus.HELD, LeadStatus.SOLD})


class LeadAdminService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.leads = LeadRepository(session)
        self.records = IngestRepository(session)

    async def _take_turns_with_ingestion(self) -> None:
        """Merges, splits and reviews rebuild leads as ingestion does: one writer at a time
        (a merge that committed while a batch updated the other lead was undone by the
        batch, the merged-away lead back on sale)."""
        await lock_key(self.session, STORE_LOCK)

    async def _lead(self, lead_id: uuid.UUID, *, for_update: bool = True) -> Lead:
        lead = await self.leads.get(lead_id, for_update=for_update)
        if lead is None:
            raise NotFound("No such lead", code="lead_not_found")
        return lead

    async def _in_buyers_hands(self, lead: Lead) -> bool:
        """Held in a cart, or bought (a shared lead can be both and still on sale): what a
        buyer saw or paid for must not change under them."""
        return (
            lead.status in _FIXED
            or lead.sales_count > 0
            or bool(await active_holds(self.session, lead.id))
        )

    def _audit(self, action: str, lead_id: uuid.UUID, by: User, **detail: object) -> None:
        audit(
            self.session,
            actor_id=by.id,
            action=action,
            subject_type="lead",
            subject_id=str(lead_id),
            at=self.runtime.clock.now(),
            detail={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in detail.items()},
        )

    async def detail(self, lead_id: uuid.UUID) -> LeadAdminOut:
        lead = await self._lead(lead_id, for_update=False)
        out = LeadAdminOut.model_validate(lead)
        out.records = [
            SourceRecordOut.model_validate(r) for r in await self.records.records_of_lead(lead_id)
        ]
        out.possible_duplicates = [
            PossibleDuplicateOut.model_validate(d)
            for d in await self.leads.possible_duplicates(lead_id, status=None)
        ]
        return out

    async def review(self, lead_id: uuid.UUID, decision: str, reason: str, by: User) -> Lead:
        """Approve (on sale) or reject (withdrawn) a quarantined lead; the decision and the
        features the model saw are kept as a training label."""
        await self._take_turns_with_ingestion()
        lead = await self._lead(lead_id)
        if lead.status is not LeadStatus.QUARANTINED:
            raise Conflict("Only quarantined leads are reviewed", code="not_in_review")
        target = LeadStatus.AVAILABLE if decision == "approve" else LeadStatus.WITHDRAWN
        if target is LeadStatus.AVAILABLE and not lead.market:
            raise Conflict("A lead outside every market cannot go on sale", code="no_market")
        if target is LeadStatus.AVAILABLE and not any(
            r.current for r in await self.records.records_of_lead(lead.id)
        ):
            raise Conflict(
                "No current record feeds this lead any more (its source withdrew or replaced "
                "it); it cannot go on sale",
                code="no_current_record",
            )
        check_transition(lead.status, target)
        now = self.runtime.clock.now()
        self.session.add(
            LeadReview(
                id=uuid.uuid4(),
                lead_id=lead.id,
                decision=decision,
                reason=reason,
                reviewer_id=by.id,
                features=dict(lead.fraud_features),  # what the model scored
                fraud_score=lead.fraud_score,
                created_at=now,
            )
        )
        lead.status = target
        lead.status_changed_at = now
        lead.updated_at = now
        self._audit("leads.review", lead.id, by, decision=decision, reason=reason)
        await self.session.flush()
        return lead

    async def _rebuild(self, statuses: dict[uuid.UUID, LeadStatus]) -> None:
        pipeline = LeadPipeline(
            self.session,
            source=None,
            parse=None,
            markets=self.runtime.markets,
            model=await active_fraud_model(self.session),
            clock=self.runtime.clock,
            sources=self.runtime.sources,
        )
        await pipeline.rebuild(statuses)

    async def merge(self, lead_id: uuid.UUID, other_id: uuid.UUID, by: User) -> Lead:
        """Fold `other` into `lead`: its records join, the golden record is rebuilt, and
        `other` is withdrawn pointing at the survivor."""
        if lead_id == other_id:
            raise Conflict("A lead cannot merge with itself", code="same_lead")
        await self._take_turns_with_ingestion()
        # Both rows locked in id order: two operators merging one pair both ways at once
        # deadlocked (PostgreSQL) when each took its own lead first.
        locked = {i: await self._lead(i) for i in sorted((lead_id, other_id))}
        lead, other = locked[lead_id], locked[other_id]
        for candidate in (lead, other):
            if candidate.merged_into_id is not None or candidate.status is LeadStatus.WITHDRAWN:
                raise Conflict("A withdrawn or merged lead cannot merge", code="lead_not_mergeable")
        if await self._in_buyers_hands(other):
            raise Conflict(
                "The other lead is held in a cart or was bought; merge it the other way round",
                code="lead_not_mergeable",
            )
        now = self.runtime.clock.now()
        await self.records.move_records(other.id, lead.id)
        await self.leads.delete_keys(other.id)
        check_transition(other.status, LeadStatus.WITHDRAWN)
        other.status = LeadStatus.WITHDRAWN
        other.merged_into_id = lead.id
        other.status_changed_at = other.updated_at = now
        await self.leads.close_possible_duplicates(
            lead.id, other.id, MatchStatus.MERGED, by.id, now
        )
        self._audit("leads.merge", lead.id, by, merged=other.id)
        await self.session.flush()
        await self._rebuild({lead.id: lead.status})
        await self.session.refresh(lead)
        return lead

    async def dismiss_duplicate(self, lead_id: uuid.UUID, other_id: uuid.UUID, by: User) -> None:
        """The operator says two leads flagged as possible duplicates are different people."""
        closed = await self.leads.close_possible_duplicates(
            lead_id, other_id, MatchStatus.DISMISSED, by.id, self.runtime.clock.now()
        )
        if not closed:
            raise NotFound(
                "These leads are not waiting as possible duplicates",
                code="possible_duplicate_not_found",
            )
        self._audit("leads.dismiss_duplicate", lead_id, by, other=other_id)

    async def unmerge(self, lead_id: uuid.UUID, record_id: uuid.UUID, by: User) -> Lead:
        """Split one source record off `lead` into a lead of its own; both are rebuilt."""
        await self._take_turns_with_ingestion()
        lead = await self._lead(lead_id)
        current = [r for r in await self.records.records_of_lead(lead.id) if r.current]
        record = next((r for r in current if r.id == record_id), None)
        if record is None:
            raise NotFound("That record is not part of this lead", code="record_not_found")
        if len(current) < 2:
            raise Conflict("The lead has only this record", code="nothing_to_unmerge")
        if await self._in_buyers_hands(lead):
            # The split would put a person a buyer holds or bought back on sale, and the
            # rebuild would change the contact details they paid for.
            raise Conflict(
                "This lead is held in a cart or was bought; it cannot be split",
                code="lead_not_splittable",
            )
        now = self.runtime.clock.now()
        split = Lead(
            id=uuid.uuid4(),
            status=LeadStatus.AVAILABLE,
            status_changed_at=now,
            kind=lead.kind,
            exclusivity=lead.exclusivity,
            max_sales=lead.max_sales,
            sales_count=0,
            source=record.source,
            source_key=record.source_key,
            created_at=now,
            updated_at=now,
        )
        self.session.add(split)
        await self.session.flush()
        await self.records.set_record_lead(record.id, split.id)
        # The decision stays on record beside the pair (ingestion only ever attaches new
        # records to leads; it never merges two existing leads, so the pair stays apart).
        await self.leads.add_possible_duplicates(
            [
                {
                    "id": uuid.uuid4(),
                    "lead_id": split.id,
                    "other_lead_id": lead.id,
                    "score": 1.0,
                    "reasons": ["unmerged by an operator"],
                    "status": MatchStatus.DISMISSED,
                    "created_at": now,
                    "decided_by": by.id,
                    "decided_at": now,
                }
            ]
        )
        self._audit("leads.unmerge", lead.id, by, record=record.id, split_into=split.id)
        await self._rebuild({lead.id: lead.status, split.id: LeadStatus.AVAILABLE})
        await self.session.refresh(split)
        return split
