"""Time-ordered ids: valid UUIDv7s, in order within a run, unique across runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aiqleads.kit.ids import uuid7_run

AT = datetime(2026, 12, 1, 9, 30, 15, 250_000, tzinfo=UTC)


def test_a_run_is_uuid7s_stamped_with_its_time_in_increasing_order() -> None:
    ids = [uuid.UUID(int=i) for i in uuid7_run(1_000, AT)]

    assert ids == sorted(ids)
    assert len(set(ids)) == 1_000
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert {i.int >> 80 for i in ids} == {int(AT.timestamp() * 1000)}  # milliseconds
    assert [f"{i.int:032x}" for i in ids[:3]] == [i.hex for i in ids[:3]]


def test_runs_at_the_same_moment_do_not_collide_and_later_runs_sort_later() -> None:
    first, second = uuid7_run(10_000, AT), uuid7_run(10_000, AT)
    later = uuid7_run(10, AT + timedelta(milliseconds=1))

    assert not set(first) & set(second)
    assert min(later) > max(max(first), max(second))


def test_an_impossible_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count out of range"):
        uuid7_run(-1, AT)
    assert len(uuid7_run(0, AT)) == 0
