"""Sources whose records are flat fields under the source's own names: MLS CSV exports,
Facebook Lead Ads, LinkedIn lead-gen forms, web forms and generated demo records.

A mapping (data, per source or per form) says which of their fields feeds which of ours;
so a new form or export layout is configuration, not code.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiqleads.ingest.connectors.base import Candidate, Consent, ParseError, RawRecord
from aiqleads.ingest.sources import SourceConfig

CANDIDATE_FIELDS = frozenset(
    f.name for f in dataclass_fields(Candidate) if f.name not in {"consent", "extra"}
)
CONSENT_FIELDS = frozenset(f.name for f in dataclass_fields(Consent))
MAX_FIELD_LENGTH = 5_000


def _scalar(value: Any, name: str) -> str | int | float | None:
    if value is None or isinstance(value, str | int | float) and not isinstance(value, bool):
        if isinstance(value, str) and len(value) > MAX_FIELD_LENGTH:
            raise ParseError("field_too_long", f"{name} is longer than {MAX_FIELD_LENGTH}", name)
        return value
    raise ParseError("invalid_field", f"{name} must be text or a number", name)


def candidate_from(
    values: Mapping[str, Any], mapping: Mapping[str, str] | None = None
) -> Candidate:
    """A Candidate from flat values. With `mapping` (ours -> theirs) the source's names are
    translated; without it the values already use our names. "consent.<field>" keys and a
    nested "consent" object both fill the consent record; unmapped values go to `extra`."""
    if mapping is not None:
        named = {ours: values.get(theirs) for ours, theirs in mapping.items()}
        used = set(mapping.values())
        extra = {k: v for k, v in values.items() if k not in used and v not in (None, "")}
    else:
        named = dict(values)
        extra = {}
    consent_values: dict[str, Any] = {}
    nested = named.pop("consent", None)
    if isinstance(nested, Mapping):
        consent_values.update(nested)
    elif nested is not None:
        raise ParseError("invalid_field", "consent must be an object", "consent")
    candidate = Candidate()
    for key, value in named.items():
        if key.startswith("consent."):
            consent_values[key.removeprefix("consent.")] = value
        elif key in CANDIDATE_FIELDS:
            setattr(candidate, key, _scalar(value, key))
        elif key == "extra" and isinstance(value, Mapping):
            extra.update(value)
        elif value not in (None, ""):
            extra[key] = value
    unknown = set(consent_values) - CONSENT_FIELDS
    if unknown:
        raise ParseError("invalid_field", f"unknown consent fields {sorted(unknown)}", "consent")
    if any(v not in (None, "") for v in consent_values.values()):
        candidate.consent = Consent(
            **{k: _scalar(v, f"consent.{k}") for k, v in consent_values.items()}  # type: ignore[arg-type]
        )
    candidate.extra = {str(k): v for k, v in extra.items()}
    return candidate


def _object(record: RawRecord) -> dict[str, Any]:
    if not isinstance(record.payload, dict):
        raise ParseError("invalid_payload", "the record is not a JSON object")
    return record.payload


class FieldsConnector:
    """Records already in our field names (web-form intake, demo data)."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source

    def parse(self, record: RawRecord) -> Candidate:
        return candidate_from(_object(record))


class CsvConnector:
    """An MLS CSV export, mapped by a column-mapping file (`options.mapping_file`, JSON:
    {"key_column": "MLS #", "columns": {"first_name": "Owner First", ...}}) or inline
    (`options.key_column`, `options.columns`)."""

    def __init__(self, source: SourceConfig, path: Path | None = None) -> None:
        self.source = source
        options = dict(source.options)
        if mapping_file := options.get("mapping_file"):
            options.update(json.loads(Path(mapping_file).read_text("utf-8")))
        self.columns: dict[str, str] = dict(options.get("columns") or {})
        self.key_column: str | None = options.get("key_column")
        self.delimiter: str = options.get("delimiter", ",")
        self.path = path or (Path(options["path"]) if options.get("path") else None)
        if not self.columns:
            raise ValueError(f"source {source.slug}: no column mapping configured")
        unknown = {
            k for k in self.columns if k not in CANDIDATE_FIELDS and not k.startswith("consent.")
        }
        if unknown:
            raise ValueError(
                f"source {source.slug}: mapping names unknown fields {sorted(unknown)}"
            )

    async def fetch(self, since: datetime | None) -> AsyncIterator[RawRecord]:
        if self.path is None:
            raise ValueError(f"source {self.source.slug}: no CSV file given")
        with self.path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            for record in self.read(handle):
                yield record

    def read(self, handle: Iterable[str]) -> Iterator[RawRecord]:
        """Rows of an open CSV as raw records (a generator)."""
        reader = csv.reader(handle, delimiter=self.delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        key_at = header.index(self.key_column) if self.key_column in header else None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # a field beyond the csv module's limit, say
                line = reader.line_num
                yield RawRecord(
                    source_key=f"line:{line}",
                    payload={"_line": line, "_error": f"line {line}: {exc}"},
                )
                continue  # the reader goes on at the next line
            if not any(cell.strip() for cell in row):
                continue
            # A row's line number stays out of its payload: it is in its content hash, and an
            # export with one row more at the top would store every row below it again.
            payload: dict[str, Any] = {}
            if len(row) != len(header):
                number = reader.line_num
                payload["_line"] = number
                payload["_error"] = f"line {number} has {len(row)} cells, header has {len(header)}"
                payload["_cells"] = row
            else:
                payload.update(zip(header, row, strict=True))
            key = (row[key_at] if key_at is not None and len(row) == len(header) else "").strip()
            if not key:
                key = "sha256:" + hashlib.sha256("\x1f".join(row).encode()).hexdigest()[:32]
            yield RawRecord(source_key=key, payload=payload)

    def parse(self, record: RawRecord) -> Candidate:
        payload = _object(record)
        if "_error" in payload:
            raise ParseError("malformed_row", str(payload["_error"]))
        if self.key_column and not str(payload.get(self.key_column) or "").strip():
            raise ParseError("missing_source_key", f"column {self.key_column!r} is empty")
        missing = sorted({c for c in self.columns.values() if c not in payload})
        if missing:
            raise ParseError("missing_columns", f"the file has no column(s) {missing}")
        values = {
            k: (v.strip() if isinstance(v, str) else v) for k, v in payload.items() if k != "_line"
        }
        return candidate_from({k: (v or None) for k, v in values.items()}, self.columns)


def _form_config(source: SourceConfig, form_id: str) -> dict[str, Any]:
    forms: dict[str, Any] = source.options.get("forms") or {}
    config = forms.get(form_id) or forms.get("*")
    if config is None:
        raise ParseError("unknown_form", f"form {form_id} is not configured for {source.slug}")
    return dict(config)


class FacebookLeadConnector:
    """A lead from the Graph API (`GET /{leadgen_id}`): `field_data` mapped per form."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source

    def parse(self, record: RawRecord) -> Candidate:
        payload = _object(record)
        if isinstance(error := payload.get("graph_error"), dict):  # see ingest.endpoints
            raise ParseError(
                "graph_lead_missing",
                f"the Graph API has no lead {payload.get('id')}: {error.get('message', '')}",
            )
        form_id = str(payload.get("form_id") or "")
        config = _form_config(self.source, form_id)
        field_data = payload.get("field_data")
        if not isinstance(field_data, list):
            raise ParseError("invalid_payload", "the lead has no field_data list", "field_data")
        values: dict[str, Any] = {}
        for entry in field_data:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ParseError("invalid_payload", "a field_data entry has no name", "field_data")
            found = entry.get("values") or []
            values[entry["name"]] = found[0] if isinstance(found, list) and found else None
        candidate = candidate_from(values, config.get("fields") or {})
        candidate.kind = candidate.kind or config.get("kind")
        created = payload.get("created_time")
        if config.get("consent_text"):
            candidate.consent = Consent(
                captured_at=str(created) if created else None,  # parse_datetime reads +0000
                text=str(config["consent_text"]),
                url=config.get("privacy_policy_url"),
            )
        candidate.extra.update(
            {k: payload[k] for k in ("ad_id", "form_id", "campaign_id") if payload.get(k)}
        )
        return candidate


class LinkedInLeadConnector:
    """A LinkedIn lead-gen form response: answers mapped per form by question id."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source

    def parse(self, record: RawRecord) -> Candidate:
        payload = _object(record)
        form_urn = str(
            payload.get("versionedLeadGenFormUrn") or payload.get("leadGenFormUrn") or ""
        )
        # urn:li:versionedLeadGenForm:(urn:li:leadGenForm:123,1) -> 123
        form_id = form_urn.split("leadGenForm:")[-1].split(",")[0].strip("()") if form_urn else ""
        config = _form_config(self.source, form_id)
        response = payload.get("formResponse")
        if not isinstance(response, dict) or not isinstance(response.get("answers"), list):
            raise ParseError("invalid_payload", "the response has no answers", "formResponse")
        values: dict[str, Any] = {}
        for answer in response["answers"]:
            if not isinstance(answer, dict):
                raise ParseError("invalid_payload", "an answer is not an object", "formResponse")
            details = answer.get("answerDetails") or {}
            text = (details.get("textQuestionAnswer") or {}).get("answer")
            if text is None:
                choice = (details.get("multipleChoiceAnswer") or {}).get("options")
                text = ", ".join(str(o) for o in choice) if isinstance(choice, list) else None
            values[str(answer.get("questionId"))] = text
        candidate = candidate_from(
            values, {k: str(v) for k, v in (config.get("fields") or {}).items()}
        )
        candidate.kind = candidate.kind or config.get("kind")
        consents = response.get("consentResponses") or []
        accepted = [c for c in consents if isinstance(c, dict) and c.get("accepted")]
        submitted = payload.get("submittedAt")
        if accepted and config.get("consent_text"):
            candidate.consent = Consent(
                captured_at=(
                    datetime.fromtimestamp(int(submitted) / 1000, UTC).isoformat()
                    if isinstance(submitted, int)
                    else None
                ),
                text=str(config["consent_text"]),
                url=config.get("privacy_policy_url"),
            )
        candidate.extra.update({"linkedin_form": form_id, "lead_type": payload.get("leadType")})
        return candidate
