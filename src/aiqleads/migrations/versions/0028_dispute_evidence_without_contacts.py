"""A dispute's evidence no longer spells out the lead's phone, e-mail or name

`disputes.evidence` wrote the values into its findings ("+18005550199 is a toll_free number",
"maria@example.com is valid", "the name 'Xxxy Bbbk' looks made up"), and the disputes API
returns them for as long as the dispute exists, after a refund has masked the lead again.
Findings are now worded without the values; this rewrites the findings stored before, in the
same words (the check and whether it supports the claim are kept).

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from aiqleads.kit.dialect import JSONType

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000

# Texts that hold no value, written before this release or since.
_PHONE_KEPT = frozenset(
    {"the lead has no phone number", "not a phone number", "the phone number is not a valid number"}
)
_EMAIL_KEPT = frozenset(
    {
        "the lead has no e-mail address",
        "the e-mail address is not valid",
        "the e-mail address is at a disposable domain",
        "the e-mail address is valid",
    }
)
_LINE_TYPE = re.compile(r".+ is a (valid )?(\w+) number")
_MADE_UP_NAME = re.compile(r"the name .+ looks made up", re.DOTALL)


def _phone(detail: str, supports: bool) -> str:
    if detail in _PHONE_KEPT:
        return detail
    if typed := _LINE_TYPE.fullmatch(detail):  # "+1... is a [valid ]<line type> number"
        return f"the phone number is a {typed[1] or ''}{typed[2]} number"
    # "'<as given>' is not a [valid ]number": the only other text, and it supports the claim.
    return "the phone number is not a valid number" if supports else detail


def _email(detail: str, supports: bool) -> str:
    if detail in _EMAIL_KEPT:
        return detail
    if not supports:  # "<address> is valid"
        return "the e-mail address is valid"
    if detail.endswith(" is disposable"):  # "<domain> is disposable"
        return "the e-mail address is at a disposable domain"
    # "'<as given>': <why not>" or "<as given> is not valid"
    return "the e-mail address is not valid"


def without_contacts(finding: dict[str, Any]) -> dict[str, Any]:
    """One stored finding as this release words it."""
    detail, supports = finding.get("detail"), bool(finding.get("supports_claim"))
    if not isinstance(detail, str):
        return finding
    check = finding.get("check")
    if check == "phone":
        detail = _phone(detail, supports)
    elif check == "email":
        detail = _email(detail, supports)
    elif check == "fraud" and _MADE_UP_NAME.fullmatch(detail):
        detail = "the name looks made up"
    return {**finding, "detail": detail}


def upgrade() -> None:
    """In id order, a batch at a time; only disputes whose evidence changes are written."""
    bind = op.get_bind()
    disputes = sa.table("disputes", sa.column("id"), sa.column("evidence", JSONType))
    after = None
    while True:
        query = sa.select(disputes.c.id, disputes.c.evidence).order_by(disputes.c.id).limit(BATCH)
        if after is not None:
            query = query.where(disputes.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            return
        after = rows[-1].id
        changed = []
        for row in rows:
            evidence = [
                without_contacts(f) if isinstance(f, dict) else f for f in row.evidence or []
            ]
            if evidence != row.evidence:
                changed.append({"dispute": row.id, "evidence": evidence})
        if changed:
            bind.execute(
                sa.update(disputes)
                .where(disputes.c.id == sa.bindparam("dispute"))
                .values(evidence=sa.bindparam("evidence")),
                changed,
            )


def downgrade() -> None:
    """Nothing to undo: the values are not kept anywhere to put back, nor should they be."""
