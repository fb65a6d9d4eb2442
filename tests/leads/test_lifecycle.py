from __future__ import annotations

import pytest

from aiqleads.leads.lifecycle import ALLOWED, IllegalTransition, LeadStatus, check_transition


def test_the_happy_path_is_allowed() -> None:
    path = [LeadStatus.QUARANTINED, LeadStatus.AVAILABLE, LeadStatus.HELD, LeadStatus.SOLD]
    for current, target in zip(path, path[1:], strict=False):
        check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (LeadStatus.SOLD, LeadStatus.AVAILABLE),
        (LeadStatus.SOLD, LeadStatus.HELD),
        (LeadStatus.QUARANTINED, LeadStatus.SOLD),
        (LeadStatus.AVAILABLE, LeadStatus.SOLD),
        (LeadStatus.WITHDRAWN, LeadStatus.AVAILABLE),
    ],
)
def test_illegal_transitions_are_refused_with_409(current: LeadStatus, target: LeadStatus) -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_transition(current, target)
    assert raised.value.status == 409
    assert raised.value.code == "illegal_transition"


def test_every_status_has_rules() -> None:
    assert set(ALLOWED) == set(LeadStatus)
