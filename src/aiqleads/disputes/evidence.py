"""The checks a dispute runs on its own, before anyone looks: pure functions of the lead as
sold (and, for duplicates, what else the buyer bought).

Each check says whether it supports the buyer's claim. A claim is clear when a check made for
its reason supports it: an invalid or non-personal phone for a wrong or disconnected number, no
consent record for "no consent", another lead the buyer already bought with the same phone,
e-mail, address or parcel for "duplicate", an undeliverable or throwaway e-mail, a gibberish
name or a fraud score over the market's threshold for "fake". Whether a person is the
property's owner cannot be checked offline: those claims always go to an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiqleads.disputes.models import DisputeReason
from aiqleads.leads.models import Lead
from aiqleads.quality.fraud import is_gibberish
from aiqleads.quality.normalise import normalise_email, normalise_phone

# Line types no homeowner answers on.
NOT_PERSONAL = frozenset({"toll_free", "premium_rate", "shared_cost", "pager", "uan", "voicemail"})


@dataclass(frozen=True)
class Finding:
    check: str
    supports_claim: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "supports_claim": self.supports_claim, "detail": self.detail}


def phone_finding(lead: Lead) -> Finding:
    if not lead.phone:
        return Finding("phone", True, "the lead has no phone number")
    phone, problems = normalise_phone(lead.phone)
    if phone is None:
        return Finding("phone", True, problems[0].message if problems else "not a phone number")
    if phone.line_type in NOT_PERSONAL:
        return Finding("phone", True, f"{phone.e164} is a {phone.line_type} number")
    return Finding("phone", False, f"{phone.e164} is a valid {phone.line_type} number")


def email_finding(lead: Lead) -> Finding:
    if not lead.email:
        return Finding("email", False, "the lead has no e-mail address")
    email, problems = normalise_email(lead.email)
    if email is None or email.disposable:
        detail = problems[0].message if problems else f"{lead.email} is not valid"
        return Finding("email", True, detail)
    return Finding("email", False, f"{email.address} is valid")


def consent_finding(lead: Lead) -> Finding:
    if lead.consent_captured_at is None or not (lead.consent_text or "").strip():
        return Finding("consent", True, "no consent record (time and text) came with the lead")
    return Finding(
        "consent", False, f"consent captured {lead.consent_captured_at:%Y-%m-%d %H:%M} UTC"
    )


def fraud_finding(lead: Lead, threshold: float) -> Finding:
    names = [n for n in (lead.first_name, lead.last_name) if n]
    if any(is_gibberish(n) for n in names):
        return Finding("fraud", True, f"the name {' '.join(names)!r} looks made up")
    if lead.fraud_score > threshold:
        return Finding(
            "fraud", True, f"fraud score {lead.fraud_score:.2f} is above {threshold:.2f}"
        )
    return Finding("fraud", False, f"fraud score {lead.fraud_score:.2f}")


def duplicate_finding(lead: Lead, twins: list[Lead]) -> Finding:
    """`twins`: leads the buyer bought before this one that share its phone, e-mail, address
    or parcel (or the lead it was merged into)."""
    if twins:
        ids = ", ".join(str(t.id) for t in twins[:3])
        return Finding("duplicate", True, f"you bought the same person before: {ids}")
    return Finding("duplicate", False, "no earlier purchase shares its phone, e-mail or address")


SUPPORTING = {
    DisputeReason.WRONG_NUMBER: frozenset({"phone"}),
    DisputeReason.DISCONNECTED: frozenset({"phone"}),
    DisputeReason.NO_CONSENT: frozenset({"consent"}),
    DisputeReason.DUPLICATE: frozenset({"duplicate"}),
    DisputeReason.FAKE: frozenset({"phone", "email", "fraud"}),
    DisputeReason.NOT_THE_OWNER: frozenset(),
}


def gather(lead: Lead, twins: list[Lead], fraud_threshold: float) -> list[Finding]:
    return [
        phone_finding(lead),
        email_finding(lead),
        consent_finding(lead),
        duplicate_finding(lead, twins),
        fraud_finding(lead, fraud_threshold),
    ]


def is_clear(reason: DisputeReason, findings: list[Finding]) -> bool:
    """The evidence itself confirms the claim."""
    return any(f.supports_claim and f.check in SUPPORTING[reason] for f in findings)
