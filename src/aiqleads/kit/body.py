"""Raw request bodies for webhooks: signatures are over the exact bytes, so the body is read
once, bounded, and parsed only after the signature is checked."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator

from aiqleads.kit.errors import AppError

MAX_BODY_BYTES = 1_000_000


async def raw_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused (413) beyond `limit` bytes, declared or streamed."""
    too_large = AppError(
        f"The body is larger than {limit:,} bytes", code="payload_too_large", status=413
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_body(body: bytes) -> Any:
    """The body as JSON, or 400 `invalid_json`: not JSON, Python's extensions of it (NaN,
    Infinity), nesting deeper than the parser's recursion, or an integer of more digits than
    Python converts (4,300)."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError too
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AppError(f"The body is not JSON: {reason}", code="invalid_json", status=400) from exc


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text may not contain the NUL character (U+0000)")
    return text


# Free text a request stores: PostgreSQL's text and jsonb cannot hold U+0000, and no person
# types one. (kit.errors answers 422 for one that reaches the database another way.)
NO_NUL = AfterValidator(_no_nul)
Text = Annotated[str, NO_NUL]
