"""The lead status lifecycle, enforced here and nowhere else."""

from __future__ import annotations

import enum

from aiqleads.kit.errors import Conflict


class LeadStatus(enum.StrEnum):
    QUARANTINED = "quarantined"  # invalid or suspicious: waits for review, never sold
    AVAILABLE = "available"  # on the marketplace
    HELD = "held"  # in a buyer's cart for a limited time
    SOLD = "sold"  # bought (an exclusive lead once; a shared one up to its maximum)
    WITHDRAWN = "withdrawn"  # rejected, merged away, refunded or pulled by an operator
    EXPIRED = "expired"  # too old to sell


ALLOWED: dict[LeadStatus, frozenset[LeadStatus]] = {
    LeadStatus.QUARANTINED: frozenset({LeadStatus.AVAILABLE, LeadStatus.WITHDRAWN}),
    LeadStatus.AVAILABLE: frozenset(
        {LeadStatus.HELD, LeadStatus.WITHDRAWN, LeadStatus.EXPIRED, LeadStatus.QUARANTINED}
    ),
    LeadStatus.HELD: frozenset(
        {LeadStatus.AVAILABLE, LeadStatus.SOLD, LeadStatus.WITHDRAWN, LeadStatus.EXPIRED}
    ),
    LeadStatus.SOLD: frozenset({LeadStatus.WITHDRAWN}),
    LeadStatus.EXPIRED: frozenset({LeadStatus.AVAILABLE, LeadStatus.WITHDRAWN}),
    LeadStatus.WITHDRAWN: frozenset(),
}


class IllegalTransition(Conflict):
    def __init__(self, current: LeadStatus, target: LeadStatus) -> None:
        super().__init__(
            f"A {current.value} lead cannot become {target.value}",
            code="illegal_transition",
            extra={"status": current.value, "target": target.value},
        )


def check_transition(current: LeadStatus, target: LeadStatus) -> None:
    """Raise `IllegalTransition` (409) unless `current -> target` is allowed."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(current, target)
