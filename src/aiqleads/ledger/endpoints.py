"""An agent's credits; operators grant credits (the manual payment provider)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from aiqleads.accounts.deps import AccountReader, AdminUser, Idempotent
from aiqleads.accounts.models import User
from aiqleads.audit.service import record as audit
from aiqleads.kit.body import Text
from aiqleads.kit.deps import RuntimeDep, SessionDep
from aiqleads.kit.errors import NotFound
from aiqleads.kit.pagination import decode_cursor, encode_cursor
from aiqleads.ledger.models import AccountKind, TransactionKind
from aiqleads.ledger.service import Ledger, Leg
from aiqleads.notifications.service import notify

router = APIRouter(prefix="/credits", tags=["credits"])
admin = APIRouter(prefix="/admin/credits", tags=["admin: credits"])

MAX_GRANT = 1_000_000


class EntryOut(BaseModel):
    id: uuid.UUID
    transaction_id: uuid.UUID
    kind: TransactionKind
    credits: int  # + in, - out
    memo: str
    created_at: datetime


class CreditsOut(BaseModel):
    balance: int
    items: list[EntryOut]
    next_cursor: str | None = None


class GrantIn(BaseModel):
    user_id: uuid.UUID
    credits: int = Field(gt=0, le=MAX_GRANT)
    reason: Text = Field(min_length=1, max_length=500)


class GrantOut(BaseModel):
    transaction_id: uuid.UUID
    user_id: uuid.UUID
    credits: int
    balance: int


@router.get("", response_model=CreditsOut)
async def credits(
    user: AccountReader,
    session: SessionDep,
    runtime: RuntimeDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> CreditsOut:
    """Your balance and every movement of your credits, newest first."""
    ledger = Ledger(session)
    account = await ledger.credits(user.id, runtime.clock.now())
    after = decode_cursor(cursor) if cursor else None
    rows = await ledger.history(account, after, limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return CreditsOut(
        balance=await ledger.balance(account),
        items=[
            EntryOut(
                id=r.entry.id,
                transaction_id=r.transaction.id,
                kind=r.transaction.kind,
                credits=r.entry.amount,
                memo=r.transaction.memo,
                created_at=r.entry.created_at,
            )
            for r in rows[:limit]
        ],
        next_cursor=encode_cursor(last.entry.created_at, last.entry.id) if last else None,
    )


@admin.post("/grant", response_model=GrantOut, status_code=status.HTTP_201_CREATED)
async def grant(
    body: GrantIn,
    operator: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    idem: Idempotent,
) -> GrantOut:
    """Give an agent credits (paid outside Stripe, a goodwill gesture...): audited, and the
    agent is told. With an `Idempotency-Key`, a retry is answered without granting again."""
    agent = await session.get(User, body.user_id)
    if agent is None:
        raise NotFound("No such user", code="user_not_found")
    now = runtime.clock.now()
    ledger = Ledger(session)
    source, target = await ledger.accounts(
        now, (AccountKind.GRANTS, None), (AccountKind.CREDITS, agent.id)
    )
    transaction = await ledger.post(
        TransactionKind.GRANT,
        [Leg(source, -body.credits), Leg(target, body.credits)],
        now,
        memo=body.reason,
        actor_id=operator.id,
    )
    audit(
        session,
        actor_id=operator.id,
        action="credits.grant",
        subject_type="user",
        subject_id=str(agent.id),
        at=now,
        detail={"credits": body.credits, "reason": body.reason, "transaction": str(transaction.id)},
    )
    await notify(
        session,
        runtime,
        agent,
        topic="purchase_receipts",
        kind="credits_granted",
        title=f"{body.credits:,} credits added",
        body=f"{body.credits:,} credits were added to your balance: {body.reason}",
        data={"transaction_id": str(transaction.id), "credits": body.credits},
    )
    out = GrantOut(
        transaction_id=transaction.id,
        user_id=agent.id,
        credits=body.credits,
        balance=target.balance,  # as the grant left it
    )
    await idem.complete(session, status.HTTP_201_CREATED, out)
    return out
