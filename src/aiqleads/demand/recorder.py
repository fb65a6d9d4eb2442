"""Demand events are buffered in memory and written in batches, never inside a request.

A search or a lead view only appends to a list; a background task writes the list every
second in one INSERT. A read request therefore never takes a write transaction (on SQLite that
would queue every search behind the single writer). The price of this: events of the last
second are lost if the process dies. They are signals for pricing and insights, not records
anyone is owed, so that trade is the right one; purchases are recorded with the sale itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from aiqleads.demand.models import DemandEvent, DemandKind
from aiqleads.kit.bulk import insert_rows, string_limits
from aiqleads.kit.clock import Clock
from aiqleads.kit.db import Database

log = structlog.get_logger(__name__)

# Cart adds and purchases move prices; a flush that carries one asks for a recompute of the
# market (at most once per market per SIGNAL_EVERY: a busy market must not reprice nonstop).
STRONG_SIGNALS = frozenset({DemandKind.CART_ADD, DemandKind.PURCHASE})
SIGNAL_EVERY = timedelta(minutes=5)
Dispatch = Callable[[list[tuple[str, dict[str, Any]]]], Awaitable[None]]


_LIMITS = string_limits(DemandEvent.__table__)  # type: ignore[arg-type]


def _fits(value: str | None, column: str) -> str | None:
    return value if value is None or len(value) <= _LIMITS[column] else None


class DemandRecorder:
    """Collects demand events and writes them in batches."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        interval_seconds: float = 1.0,
        max_buffered: int = 50_000,
        dispatch: Dispatch | None = None,
        signal_job: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.interval = interval_seconds
        self.max_buffered = max_buffered
        self.dispatch = dispatch
        self.signal_job = signal_job
        self._buffer: deque[dict[str, Any]] = deque(maxlen=max_buffered)
        self._signalled: dict[str, datetime] = {}
        self._to_signal: set[str] = set()
        self.dropped = 0

    def record(
        self,
        kind: DemandKind,
        *,
        user_id: uuid.UUID | None,
        lead_id: uuid.UUID | None = None,
        market: str | None = None,
        lead_kind: str | None = None,
        property_type: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Remember one event; it reaches the database within `interval_seconds`. A value
        longer than its column (no market, kind or property type is) is left out, so one odd
        search cannot fail the batch it is written in."""
        if len(self._buffer) == self.max_buffered:
            # The database has been unreachable for a while: keep the newest signals (the
            # deque drops the oldest).
            self.dropped += 1
        self._buffer.append(
            {
                "id": uuid.uuid4(),
                "kind": kind,
                "user_id": user_id,
                "lead_id": lead_id,
                "market": _fits(market, "market"),
                "lead_kind": _fits(lead_kind, "lead_kind"),
                "property_type": _fits(property_type, "property_type"),
                "detail": detail or {},
                "created_at": self.clock.now(),
            }
        )

    def signal(self, markets: set[str]) -> None:
        """Ask for these markets to be repriced at the next flush, as a cart add would
        (purchases are written with the sale itself, and signal through here)."""
        self._to_signal |= markets

    async def flush(self) -> int:
        """Write everything buffered so far; returns how many events were written."""
        batch = list(self._buffer)
        self._buffer.clear()
        if not batch:
            await self._signal(batch)
            return 0
        try:
            written = await self._write(batch)
        except BaseException:  # also a cancellation at shutdown: keep them for the last flush
            # Before the events recorded meanwhile, and the newest kept when the buffer is full
            # (extendleft on a full deque would drop from the new end).
            self._buffer = deque([*batch, *self._buffer], maxlen=self.max_buffered)
            raise
        await self._signal(batch)
        return written

    async def _write(self, batch: list[dict[str, Any]]) -> int:
        """INSERT the batch; rows the database refuses as data (not a lost connection, which
        is raised for the batch to be kept) are found by halving and dropped, logged."""
        try:
            async with self.db.unit_of_work() as session:
                await insert_rows(session, DemandEvent.__table__, batch)  # type: ignore[arg-type]
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            if len(batch) == 1:
                self.dropped += 1
                log.warning("demand_event_refused", kind=str(batch[0]["kind"]), error=str(exc.orig))
                return 0
            half = len(batch) // 2
            return await self._write(batch[:half]) + await self._write(batch[half:])
        return len(batch)

    async def _signal(self, batch: list[dict[str, Any]]) -> None:
        if self.dispatch is None or self.signal_job is None:
            return
        now = self.clock.now()
        markets = {e["market"] for e in batch if e["kind"] in STRONG_SIGNALS and e["market"]}
        markets |= self._to_signal
        self._to_signal = set()
        due = [
            m
            for m in sorted(markets)
            if now - self._signalled.get(m, now - SIGNAL_EVERY) >= SIGNAL_EVERY
        ]
        if due:
            await self.dispatch([(self.signal_job, {"market": m}) for m in due])
            for market in due:
                self._signalled[market] = now

    async def run(self) -> None:
        """Flush every `interval_seconds` until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as exc:  # a database hiccup must not stop the loop
                log.warning("demand_flush_failed", error=repr(exc), buffered=len(self._buffer))
