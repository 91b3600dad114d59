"""Reading requests safely: bounded, time-limited bodies; forms and JSON parsed strictly;
the client's address; whether it wants JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_FIELD_CHARS = 1_000


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The body, refused over `limit` bytes (413) or when it takes longer than `seconds`
    (408): a body trickled a byte at a time would hold the connection for hours."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []

    async def receive() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive(), timeout=seconds)
    except TimeoutError:
        raise HTTPException(408, f"the request body took longer than {seconds:g} s") from None
    return b"".join(chunks)


def parse_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """A form or a JSON object as a dict (a form's `topics` stays a list)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8") from None
    if kind == "application/json":
        try:
            data = json.loads(text or "{}")
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested too deep
            raise HTTPException(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the JSON body must be an object")
        return data
    if kind in ("", "application/x-www-form-urlencoded"):
        try:  # strict: a percent-escaped byte that is not UTF-8 is refused, not replaced
            parsed = parse_qs(text, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise HTTPException(400, "the form is not UTF-8") from None
        return {k: v if k == "topics" else v[-1] for k, v in parsed.items()}
    raise HTTPException(415, "send a form (application/x-www-form-urlencoded) or JSON")


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    return "application/json" in accept or content_type.startswith("application/json")


def client_address(request: Request) -> str:
    """uvicorn applied X-Forwarded-For only if it came from serve.trusted_proxies."""
    return request.client.host if request.client else "unknown"


def is_text(value: object) -> bool:
    """A string of reasonable length that can be stored: JSON may carry lone surrogates
    ("\\ud800"), which no database encoding accepts."""
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
