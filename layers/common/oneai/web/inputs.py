"""One guard for bodies and text the app cannot take, before any route sees the request.

PostgreSQL refuses NUL (U+0000) in `text` and `jsonb`, and UTF-8 has no encoding for a lone surrogate
(`"\\udc00"` is valid JSON but not valid Unicode); JSON's `NaN` and `Infinity` are not JSON at all,
although Python's parser accepts them. Left to reach the database, each of these is a 500. Checked here,
once for every app, they are a 422 naming the field (a NUL in the path names nothing, so it is a 404),
and no route needs its own check.

A body that is not UTF-8, or nests arrays and objects deeper than `MAX_JSON_DEPTH`, is a 400 here too:
the parser gives up on a deep one with a RecursionError (not a ValueError), and a document only a little
less deep still breaks every recursive walk after it (this guard's own, pydantic's, the JSON encoder's).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneai.errors import BadRequestError, NotFoundError, OneAIError, ValidationError
from oneai.unstorable import UNSTORABLE, has_unstorable
from oneai.web.errors import ErrorAnswer, envelope_answer

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# In JSON text, a NUL or a surrogate can only be written as a `\u` escape (a raw control character is
# malformed JSON), and NaN/Infinity only as those bare words. A body without any of these is fine without
# being parsed here; one with them (or with a look-alike, such as an escaped backslash) is parsed.
SUSPECT_JSON = re.compile(rb"\\u(0000|[dD][89a-fA-F])|NaN|Infinity")
# Deep enough for any request (a tool's JSON schema included), shallow enough for every recursive walk.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
_NOT_MARKS = bytes(b for b in range(256) if b not in b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')
_EMPTY_PAIRS = re.compile(rb"\[\]|\{\}")


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)


def _problem(path: str, message: str) -> dict[str, str]:
    return {"field": path, "message": message, "type": "string_unstorable"}


def unstorable_fields(value: Any, path: str = "") -> list[dict[str, str]]:
    """Every string (key or value) in a parsed JSON document that the database could not store."""
    found: list[dict[str, str]] = []
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            found.append(_problem(path, "must not contain NUL characters or lone surrogates"))
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if UNSTORABLE.search(key):
                found.append(_problem(path or "body", "keys must not contain NUL characters or lone surrogates"))
                child = path or "body"
            found += unstorable_fields(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unstorable_fields(item, f"{path}.{index}" if path else str(index))
    return found


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `limit`, read from its bytes before
    any parser recurses into them (exact for valid JSON; malformed JSON is refused by the parser anyway).
    Bytes operations only, no Python loop per character: the escapes that could hide a quote go, then all
    but quotes and brackets, then the strings; the brackets left are emptied one level of `[]`/`{}` pairs
    at a time."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(None, _NOT_MARKS)
    if marks.count(b"[") + marks.count(b"{") <= limit:
        return False
    # Quotes alternate open, close: dropping two adjacent ones (an empty string, or the gap between two
    # strings with no bracket in it) keeps every bracket on its side, and leaves few strings to drop.
    brackets = _QUOTED.sub(b"", marks.replace(b'""', b""))
    for _ in range(limit + 1):
        if not brackets:
            return False
        brackets, emptied = _EMPTY_PAIRS.subn(b"", brackets)
        if not emptied:  # unbalanced: not JSON, which the parser says
            return False
    return True


def _unreadable(body: bytes) -> BadRequestError | None:
    if nests_deeper_than(body, MAX_JSON_DEPTH):
        return BadRequestError(TOO_DEEP)
    if not (body.isascii() or _is_utf8(body)):  # RFC 8259: JSON between systems is UTF-8
        return BadRequestError("The request body is not UTF-8")
    return None


def decode_json(body: bytes) -> Any:
    """The JSON document of a body: BadRequestError (400) when it nests deeper than MAX_JSON_DEPTH, is not
    UTF-8 or not JSON; ValidationError (422) for NaN and Infinity, which are not JSON numbers."""
    unreadable = _unreadable(body)
    if unreadable is not None:
        raise unreadable
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except _NotJson as exc:
        raise ValidationError(
            "The request is not valid",
            details={"errors": [{"field": "", "message": f"{exc} is not a JSON number", "type": "json_invalid"}]},
        ) from None
    except (ValueError, RecursionError):
        raise BadRequestError("The request body is not valid JSON") from None


def check_json_body(body: bytes) -> OneAIError | None:
    """What is wrong with a JSON body: a 400 when it nests too deep or is not UTF-8, a 422 for NaN/Infinity
    or unstorable text; None when it is fine. Parsed only when one of the latter may be there (malformed
    JSON that is not parsed here is the app's to refuse, with the same 400)."""
    unreadable = _unreadable(body)
    if unreadable is not None or SUSPECT_JSON.search(body) is None:
        return unreadable
    try:
        document = decode_json(body)
    except OneAIError as error:
        return error
    problems = unstorable_fields(document) if has_unstorable(document) else []
    if problems:
        return ValidationError("The request is not valid", details={"errors": problems})
    return None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_query(query_string: bytes) -> OneAIError | None:
    if b"%00" not in query_string:
        return None
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
    problems = [
        _problem(name, "must not contain NUL characters")
        for name, value in pairs
        if UNSTORABLE.search(name) or UNSTORABLE.search(value)
    ]
    return ValidationError("The request is not valid", details={"errors": problems}) if problems else None


def _is_json(headers: dict[bytes, bytes]) -> bool:
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return content_type in (b"", b"application/json") or content_type.endswith(b"+json")


class InputGuard:
    """The ASGI middleware applying the checks above; the body is read once and handed on unchanged.
    `answer` writes a refusal in the shape of the API the request is for."""

    def __init__(self, app: ASGIApp, answer: ErrorAnswer = envelope_answer) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error: OneAIError | None = None
        if UNSTORABLE.search(scope.get("path", "")):
            error = NotFoundError()
        else:
            error = check_query(scope.get("query_string", b""))
        headers = dict(scope.get("headers") or [])
        if error is None and scope.get("method") in BODY_METHODS and _is_json(headers):
            body, receive = await _buffered(receive)
            if body:
                error = check_json_body(body)
        if error is not None:
            await self.answer(scope, error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that replays it, then passes on what comes after (a disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), _replay(b"".join(chunks), receive, message)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), _replay(b"".join(chunks), receive, None)


def _replay(body: bytes, receive: Receive, pending: Message | None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent, pending
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replay
