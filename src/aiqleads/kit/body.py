"""Request bodies: a size limit for every request, and raw bodies for webhooks (signatures are
over the exact bytes, so the body is read once, bounded, and parsed only after the signature is
checked)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiqleads.kit.errors import AppError, problem_response

MAX_BODY_BYTES = 1_000_000


def _too_large_detail(limit: int) -> str:
    return f"The body is larger than {limit:,} bytes"


class BodyLimitMiddleware:
    """Refuse a request body over `limit` bytes with 413 `payload_too_large` (problem+json):
    at once when Content-Length declares it, else as soon as the bytes received pass it, so a
    huge body is never read whole. The error raised from `receive` reaches the app's handlers
    as an HTTPException (FastAPI re-raises those from its body parsing)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limit:
            response = problem_response(
                Request(scope), 413, "payload_too_large", _too_large_detail(self.limit)
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, _too_large_detail(self.limit))
            return message

        await self.app(scope, limited_receive, send)


async def raw_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused (413) beyond `limit` bytes, declared or streamed."""
    too_large = AppError(_too_large_detail(limit), code="payload_too_large", status=413)
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
