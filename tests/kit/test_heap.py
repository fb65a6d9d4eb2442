"""The collector settings a runtime takes for its life and gives back."""

from __future__ import annotations

import gc

from aiqleads.kit import heap


def test_a_runtime_collects_young_objects_less_often_and_gives_the_settings_back() -> None:
    before = gc.get_threshold()
    heap.freeze()
    try:
        during = gc.get_threshold()
        assert during[0] == max(before[0], heap.YOUNG_THRESHOLD)
        assert during[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    finally:
        heap.thaw()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
