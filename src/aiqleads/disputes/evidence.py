"""The checks a dispute runs on its own, before anyone looks: pure functions of the lead as
sold (and, for duplicates, what else the buyer bought).

Each check says whether it supports the buyer's claim. A claim is clear when a check made for
its reason supports it: an invalid or non-personal phone (not a missing one: a lead may come
with an e-mail only) for a wrong or disconnected number, no consent record for "no consent",
another lead the buyer already bought that de-duplication would merge with this one for
"duplicate", an invalid or non-personal phone, an undeliverable or throwaway e-mail, a
gibberish name or a fraud score over the market's threshold for "fake". Whether a person is
the property's owner cannot be checked offline: those claims always go to an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiqleads.disputes.models import DisputeReason
from aiqleads.disputes.repository import Candidate
from aiqleads.leads.models import Lead
from aiqleads.leads.repository import COMPARE_COLUMNS
from aiqleads.quality.dedup import Decision, Fields, compare
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


# Findings stay readable for as long as the dispute, after a refund has masked the lead
# again: their wording names the phone, e-mail and name, never their values.
def phone_finding(lead: Lead) -> Finding:
    """A missing phone proves nothing (a lead may come with an e-mail only); an invalid or
    non-personal one supports a wrong, disconnected or fake number."""
    phone, problems = normalise_phone(lead.phone)
    if phone is None and not problems:
        return Finding("phone", False, "the lead has no phone number")
    if phone is None:
        return Finding("phone", True, "the phone number is not a valid number")
    if phone.line_type in NOT_PERSONAL:
        return Finding("phone", True, f"the phone number is a {phone.line_type} number")
    return Finding("phone", False, f"the phone number is a valid {phone.line_type} number")


def email_finding(lead: Lead) -> Finding:
    email, problems = normalise_email(lead.email)
    if email is None and not problems:
        return Finding("email", False, "the lead has no e-mail address")
    if email is None:
        return Finding("email", True, "the e-mail address is not valid")
    if email.disposable:
        return Finding("email", True, "the e-mail address is at a disposable domain")
    return Finding("email", False, "the e-mail address is valid")


def consent_finding(lead: Lead) -> Finding:
    if lead.consent_captured_at is None or not (lead.consent_text or "").strip():
        return Finding("consent", True, "no consent record (time and text) came with the lead")
    return Finding(
        "consent", False, f"consent captured {lead.consent_captured_at:%Y-%m-%d %H:%M} UTC"
    )


def fraud_finding(lead: Lead, threshold: float, approved: bool = False) -> Finding:
    """`approved`: an operator reviewed the lead and put it on sale as genuine, which its
    score alone does not outweigh (the score that sent it to review)."""
    names = [n for n in (lead.first_name, lead.last_name) if n]
    if any(is_gibberish(n) for n in names):
        return Finding("fraud", True, "the name looks made up")
    if lead.fraud_score > threshold and approved:
        return Finding(
            "fraud",
            False,
            f"fraud score {lead.fraud_score:.2f}, but an operator reviewed the lead and "
            "approved it as genuine",
        )
    if lead.fraud_score > threshold:
        return Finding(
            "fraud", True, f"fraud score {lead.fraud_score:.2f} is above {threshold:.2f}"
        )
    return Finding("fraud", False, f"fraud score {lead.fraud_score:.2f}")


def _compared(lead: Lead) -> Fields:
    return {column: getattr(lead, column) for column in COMPARE_COLUMNS}


def is_twin(lead: Lead, earlier: Candidate) -> bool:
    """The same person, by the decision ingestion merges on (a MATCH): a shared key alone is
    not enough, as neighbours share a building and a household a phone."""
    if earlier.lead.id == lead.merged_into_id:
        return True
    result = compare(_compared(lead), _compared(earlier.lead), earlier.shared)
    return result.decision is Decision.MATCH


def duplicate_finding(lead: Lead, earlier: list[Candidate]) -> Finding:
    """`earlier`: leads the buyer bought before this one that share its phone, e-mail,
    building or parcel (or the lead it was merged into)."""
    twins = [c.lead for c in earlier if is_twin(lead, c)]
    if twins:
        ids = ", ".join(str(t.id) for t in twins[:3])
        return Finding("duplicate", True, f"you bought the same person before: {ids}")
    return Finding("duplicate", False, "no earlier purchase is the same person")


SUPPORTING = {
    DisputeReason.WRONG_NUMBER: frozenset({"phone"}),
    DisputeReason.DISCONNECTED: frozenset({"phone"}),
    DisputeReason.NO_CONSENT: frozenset({"consent"}),
    DisputeReason.DUPLICATE: frozenset({"duplicate"}),
    DisputeReason.FAKE: frozenset({"phone", "email", "fraud"}),
    DisputeReason.NOT_THE_OWNER: frozenset(),
}


def gather(
    lead: Lead, earlier: list[Candidate], fraud_threshold: float, approved: bool = False
) -> list[Finding]:
    return [
        phone_finding(lead),
        email_finding(lead),
        consent_finding(lead),
        duplicate_finding(lead, earlier),
        fraud_finding(lead, fraud_threshold, approved),
    ]


def is_clear(reason: DisputeReason, findings: list[Finding]) -> bool:
    """The evidence itself confirms the claim."""
    return any(f.supports_claim and f.check in SUPPORTING[reason] for f in findings)
