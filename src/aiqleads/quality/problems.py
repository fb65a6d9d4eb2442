"""Coded problems: every reason a record is repaired, flagged or quarantined has a stable code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a record. Errors quarantine it; warnings are kept as flags."""

    code: str
    message: str
    field: str | None = None
    severity: Severity = "error"

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "severity": self.severity,
        }


def warning(code: str, message: str, field: str | None = None) -> Problem:
    return Problem(code, message, field, "warning")


def error(code: str, message: str, field: str | None = None) -> Problem:
    return Problem(code, message, field, "error")
