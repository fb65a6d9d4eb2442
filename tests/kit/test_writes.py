"""Queued writes (`kit.writes`): sent as the transaction commits, in one statement on
PostgreSQL, dropped with a rollback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from aiqleads.accounts.models import User
from aiqleads.kit import writes as writes_module
from aiqleads.kit.db import Database, create_engine
from aiqleads.kit.errors import AppError
from aiqleads.kit.writes import table_of, writes
from aiqleads.mail.models import EmailStatus, OutboundEmail
from aiqleads.notifications.models import Notification
from tests.commerce import agent

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    yield database
    await database.engine.dispose()


def statements_sent(database: Database) -> list[str]:
    """Every statement the engine sends from now on (BEGIN and COMMIT aside)."""
    sent: list[str] = []

    @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
    def _sent(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    return sent


def email(n: int) -> OutboundEmail:
    return OutboundEmail(
        kind="test",
        to_address=f"agent{n}@agents.example.com",
        subject=f"message {n}",
        body_text="hello",
        status=EmailStatus.PENDING,
        next_attempt_at=NOW,
        created_at=NOW,
    )


async def test_queued_rows_go_out_at_commit_together_children_beside_their_parent(
    db: Database,
) -> None:
    sent = statements_sent(db)
    owner = agent(NOW, "Ada Agent")
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))  # the transaction has begun
        queued = writes(session)
        queued.add(owner)
        note = queued.add(
            Notification(user_id=owner.id, kind="k", title="t", body="b", data={}, created_at=NOW)
        )
        assert note.id is not None  # its default, set at once
        # Not written yet: a query in the same transaction does not see them.
        assert await session.get(User, owner.id) is None
        sent.clear()
    writes_sent = [s for s in sent if "INSERT" in s]
    if db.dialect == "postgresql":
        assert len(writes_sent) == 1
        assert writes_sent[0].lstrip().startswith("WITH")
    else:
        assert len(writes_sent) == 2  # users, then notifications (foreign keys checked at once)
    async with db.unit_of_work(write=False) as session:
        stored = await session.get(Notification, note.id)
        assert stored is not None
        assert stored.user_id == owner.id
        assert (await session.get(User, owner.id)) is not None


async def test_a_rolled_back_transaction_writes_nothing_it_queued(db: Database) -> None:
    queued_email = email(1)

    async def fail_after_queueing() -> None:
        async with db.unit_of_work() as session:
            await session.execute(sa.select(1))
            writes(session).add(queued_email)
            raise AppError("the request failed")

    with pytest.raises(AppError):
        await fail_after_queueing()
    later = email(2)
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        writes(session).add(later)
    async with db.unit_of_work(write=False) as session:
        assert await session.get(OutboundEmail, queued_email.id) is None
        assert await session.get(OutboundEmail, later.id) is not None


async def test_updates_set_values_and_add_to_counts(db: Database) -> None:
    """As if sent one after another: a row updated twice, or inserted and then updated in the
    same queue, ends with both changes (on PostgreSQL they go in separate statements)."""
    rows = [email(n) for n in range(3)]
    fresh = email(3)
    async with db.unit_of_work() as session:
        session.add_all(rows)
    sent_at = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        queued = writes(session)
        queued.update(
            table_of(OutboundEmail),
            [rows[0].id, rows[1].id],
            {"status": EmailStatus.SENT, "sent_at": sent_at},
            increments={"attempts": 1},
        )
        queued.update(table_of(OutboundEmail), [rows[1].id], {}, increments={"attempts": 2})
        queued.add(fresh)
        queued.update(table_of(OutboundEmail), [fresh.id], {}, increments={"attempts": 5})
    async with db.unit_of_work(write=False) as session:
        found = {
            e.id: e
            for e in await session.scalars(
                sa.select(OutboundEmail).execution_options(populate_existing=True)
            )
        }
    assert (found[rows[0].id].status, found[rows[0].id].attempts) == (EmailStatus.SENT, 1)
    assert found[rows[0].id].sent_at == sent_at
    assert (found[rows[1].id].status, found[rows[1].id].attempts) == (EmailStatus.SENT, 3)
    assert (found[rows[2].id].status, found[rows[2].id].attempts) == (EmailStatus.PENDING, 0)
    assert found[fresh.id].attempts == 5


async def test_a_queue_beyond_the_parameter_limit_goes_in_parts(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes_module, "MAX_PARAMETERS", 40)  # about three e-mails a part
    sent = statements_sent(db)
    queued_emails = [email(n) for n in range(10)]
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        queued = writes(session)
        for e in queued_emails:
            queued.add(e)
        sent.clear()
    if db.dialect == "postgresql":
        assert len([s for s in sent if "INSERT" in s]) == 4  # 13 parameters each: 3+3+3+1
    ids = [e.id for e in queued_emails] * 3  # 30 ids: more than one statement takes (13)
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        writes(session).update(table_of(OutboundEmail), ids, {}, increments={"attempts": 1})
    async with db.unit_of_work(write=False) as session:
        attempts = list(await session.scalars(sa.select(OutboundEmail.attempts)))
    # Each row listed three times is updated once per statement it falls in: 13+13+4 ids.
    assert sorted(attempts) == sorted(
        sum(1 for part in (ids[:13], ids[13:26], ids[26:]) if i in part) for i in ids[:10]
    )


async def test_a_long_queue_goes_in_statements_of_a_bounded_number_of_parts(
    db: Database,
) -> None:
    """A checkout of hundreds of leads queues a part per row: one statement of them all took
    SQLAlchemy tens of seconds to compile (on the event loop, every other request waiting).
    Each statement carries at most MAX_PARTS parts, and every row still goes in."""
    sent = statements_sent(db)
    count = 3 * writes_module.MAX_PARTS + 5
    queued_emails = [email(n) for n in range(count)]
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        queued = writes(session)
        for e in queued_emails:
            queued.add(e)
        sent.clear()
    inserts = [s for s in sent if "INSERT" in s]
    if db.dialect == "postgresql":
        assert len(inserts) == 4
        assert max(s.count("INSERT") for s in inserts) == writes_module.MAX_PARTS
    async with db.unit_of_work(write=False) as session:
        stored = await session.scalar(sa.select(sa.func.count()).select_from(OutboundEmail))
    assert stored == count


async def test_an_object_in_the_session_is_not_queued_as_well(db: Database) -> None:
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        added = email(1)
        session.add(added)
        await session.flush()
        with pytest.raises(ValueError, match="written twice"):
            writes(session).add(added)


async def test_rows_of_one_table_queued_with_different_columns_all_go_in(db: Database) -> None:
    """An object added whole and a row given only some columns, for the same table: both
    are written, the missing columns at their defaults (SQLite sends them in one
    executemany)."""
    whole = email(1)
    partial_id = uuid.uuid4()
    async with db.unit_of_work() as session:
        await session.execute(sa.select(1))
        queued = writes(session)
        queued.add(whole)
        queued.insert(
            table_of(OutboundEmail),
            [
                {
                    "id": partial_id,
                    "kind": "test",
                    "to_address": "agent2@agents.example.com",
                    "subject": "message 2",
                    "body_text": "hello",
                    "status": EmailStatus.PENDING,
                    "next_attempt_at": NOW,
                    "created_at": NOW,
                }
            ],
        )
    async with db.unit_of_work(write=False) as session:
        stored = await session.get(OutboundEmail, partial_id)
        assert await session.get(OutboundEmail, whole.id) is not None
    assert stored is not None
    assert stored.attempts == 0  # its column default
    assert stored.sent_at is None
