"""All SQL of source records, ingestion runs and source sync state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.ingest.models import IngestionRun, Outcome, RunStatus, SourceRecord, SourceState
from aiqleads.kit import bulk


class IngestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current_records(
        self, source: str, source_keys: Sequence[str]
    ) -> dict[str, SourceRecord]:
        """The current version of each of `source_keys` we already hold."""
        found: dict[str, SourceRecord] = {}
        keys = sorted(set(source_keys))
        for chunk in bulk.chunks(keys):
            rows = await self.session.execute(
                sa.select(SourceRecord).where(
                    SourceRecord.source == source,
                    SourceRecord.source_key.in_(chunk),
                    SourceRecord.current.is_(True),
                )
            )
            for record in rows.scalars():
                found[record.source_key] = record
        return found

    async def earlier_versions(
        self, source: str, versions: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], uuid.UUID]:
        """The superseded rows holding any of `versions` ((source key, content hash)) again: a
        record that went back to an earlier version (a price changed and changed back)."""
        found: dict[tuple[str, str], uuid.UUID] = {}
        wanted = set(versions)
        for chunk in bulk.chunks(sorted({key for key, _ in wanted})):
            rows = await self.session.execute(
                sa.select(
                    SourceRecord.id, SourceRecord.source_key, SourceRecord.content_hash
                ).where(
                    SourceRecord.source == source,
                    SourceRecord.source_key.in_(chunk),
                    SourceRecord.current.is_(False),
                )
            )
            for record_id, key, digest in rows:
                if (key, digest) in wanted:
                    found[(key, digest)] = record_id
        return found

    async def contributions(self, lead_ids: Sequence[uuid.UUID]) -> list[SourceRecord]:
        """Every current record that feeds one of `lead_ids` (for survivorship)."""
        ids = sorted(set(lead_ids))
        records: list[SourceRecord] = []
        for chunk in bulk.chunks(ids):
            rows = await self.session.execute(
                sa.select(SourceRecord).where(
                    SourceRecord.lead_id.in_(chunk),
                    SourceRecord.current.is_(True),
                )
            )
            records.extend(rows.scalars())
        return records

    async def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        await bulk.insert_rows(self.session, SourceRecord.__table__, rows)  # type: ignore[arg-type]

    async def update_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """Update records by id (each row has "id")."""
        await bulk.update_rows(self.session, SourceRecord.__table__, rows)  # type: ignore[arg-type]

    async def supersede(self, record_ids: Sequence[uuid.UUID]) -> None:
        if record_ids:
            await self.session.execute(
                sa.update(SourceRecord)
                .where(SourceRecord.id.in_(list(record_ids)))
                .values(current=False)
            )

    async def set_record_lead(self, record_id: uuid.UUID, lead_id: uuid.UUID | None) -> None:
        await self.session.execute(
            sa.update(SourceRecord).where(SourceRecord.id == record_id).values(lead_id=lead_id)
        )

    async def move_records(self, from_lead: uuid.UUID, to_lead: uuid.UUID) -> None:
        await self.session.execute(
            sa.update(SourceRecord).where(SourceRecord.lead_id == from_lead).values(lead_id=to_lead)
        )

    async def run_records(self, run_id: uuid.UUID) -> list[SourceRecord]:
        """The records a run brought in, in arrival order (what a replay re-processes)."""
        rows = await self.session.execute(
            sa.select(SourceRecord)
            .where(SourceRecord.run_id == run_id)
            .order_by(SourceRecord.received_at, SourceRecord.id)
        )
        return list(rows.scalars())

    async def records_of_lead(self, lead_id: uuid.UUID) -> list[SourceRecord]:
        rows = await self.session.execute(
            sa.select(SourceRecord)
            .where(SourceRecord.lead_id == lead_id)
            .order_by(SourceRecord.received_at)
        )
        return list(rows.scalars())

    async def quarantined(self, run_id: uuid.UUID, limit: int = 100) -> list[SourceRecord]:
        rows = await self.session.execute(
            sa.select(SourceRecord)
            .where(
                SourceRecord.run_id == run_id,
                SourceRecord.outcome.in_([Outcome.QUARANTINED, Outcome.FAILED]),
            )
            .order_by(SourceRecord.received_at)
            .limit(limit)
        )
        return list(rows.scalars())

    async def add_run(self, run: IngestionRun) -> IngestionRun:
        self.session.add(run)
        await self.session.flush()
        return run

    async def get_run(self, run_id: uuid.UUID) -> IngestionRun | None:
        return await self.session.get(IngestionRun, run_id)

    async def list_runs(
        self, *, source: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[IngestionRun]:
        stmt = sa.select(IngestionRun)
        if source:
            stmt = stmt.where(IngestionRun.source == source)
        if after is not None:
            stmt = stmt.where(
                sa.tuple_(IngestionRun.started_at, IngestionRun.id) < sa.tuple_(*after)
            )
        stmt = stmt.order_by(IngestionRun.started_at.desc(), IngestionRun.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def save_run(self, run: IngestionRun) -> bool:
        """Write a live run's progress or outcome; False (nothing written) when the run is no
        longer running in the database: another process closed it (took it for abandoned)."""
        result = await self.session.execute(
            sa.update(IngestionRun)
            .where(IngestionRun.id == run.id, IngestionRun.status == RunStatus.RUNNING)
            .values(
                status=run.status,
                finished_at=run.finished_at,
                heartbeat_at=run.heartbeat_at,
                counts=run.counts,
                quarantined_by_reason=run.quarantined_by_reason,
                errors=run.errors,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def beat(self, run_id: uuid.UUID, now: datetime) -> bool:
        """Mark a live run as alive at `now`; False when it is no longer running."""
        result = await self.session.execute(
            sa.update(IngestionRun)
            .where(IngestionRun.id == run_id, IngestionRun.status == RunStatus.RUNNING)
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def running(self, source: str | None = None) -> list[IngestionRun]:
        """Runs marked running (of one source, or of all), oldest first."""
        stmt = sa.select(IngestionRun).where(IngestionRun.status == RunStatus.RUNNING)
        if source is not None:
            stmt = stmt.where(IngestionRun.source == source)
        stmt = stmt.order_by(IngestionRun.started_at)
        return list((await self.session.execute(stmt)).scalars())

    async def state(self, source: str) -> SourceState | None:
        return await self.session.get(SourceState, source)

    async def save_state(
        self,
        source: str,
        high_water_mark: datetime | None,
        validators: dict[str, Any],
        now: datetime,
    ) -> None:
        state = await self.session.get(SourceState, source)
        if state is None:
            self.session.add(
                SourceState(
                    source=source,
                    high_water_mark=high_water_mark,
                    validators=validators,
                    updated_at=now,
                )
            )
        else:
            state.high_water_mark = high_water_mark
            state.validators = validators
            state.updated_at = now
        await self.session.flush()
