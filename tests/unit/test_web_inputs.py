"""The web layer's input guard, Retry-After, and the unhandled-error log line, on an app built by the same
factory as every function's (no network: Starlette's test client calls the ASGI app in process)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from oneai.errors import QuotaExceededError, ValidationError
from oneai.logging import logger
from oneai.pagination import decode_cursor
from oneai.web.app import create_app
from oneai.web.bodies import json_body
from oneai.web.errors import retry_after_seconds
from oneai.web.inputs import MAX_JSON_DEPTH, check_json_body, check_query, nests_deeper_than

SECRET_INPUT = "my-private-words-4711"


def test_json_bodies_with_unstorable_text_or_non_numbers_are_422_naming_the_field() -> None:
    assert check_json_body(b'{"title": "fine", "metadata": {"a": [1, 2.5, "\\ud83d\\ude00"]}}') is None
    assert check_json_body(b"{not json") is None  # left to the app: 400
    for raw, field in [
        (b'{"title": "a\\u0000b"}', "title"),
        (b'{"metadata": {"list": ["ok", "\\udc00"]}}', "metadata.list.1"),
        (b'{"metadata": {"k\\u0000": 1}}', "metadata"),
        (b'{"a": NaN}', ""),
        (b'{"a": -Infinity}', ""),
    ]:
        error = check_json_body(raw)
        assert error is not None and error.status == 422, raw
        assert error.details["errors"][0]["field"] == field, raw


def test_query_strings_with_a_nul_are_422_naming_the_parameter() -> None:
    assert check_query(b"q=hello&limit=5") is None
    error = check_query(b"limit=5&q=a%00b")
    assert error is not None and error.details["errors"] == [
        {"field": "q", "message": "must not contain NUL characters", "type": "string_unstorable"}
    ]


def test_retry_after_is_whole_seconds_until_the_reset_and_at_least_one() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2026-11-22T13:00:00Z", now) == 3600
    assert retry_after_seconds("2026-11-22T12:00:00.200000Z", now) == 1  # rounded up
    assert retry_after_seconds((now - timedelta(minutes=5)).isoformat(), now) == 1  # already due
    assert retry_after_seconds(None, now) is None and retry_after_seconds("soon", now) is None


def failing_app() -> TestClient:
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        # What PostgreSQL says about bad input quotes the input.
        raise psycopg.errors.UntranslatableCharacter(f'invalid byte sequence near "{SECRET_INPUT}"')

    @router.get("/quota")
    def quota() -> None:
        resets_at = (datetime.now(UTC) + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
        raise QuotaExceededError(details={"quota_key": "small_messages", "resets_at": resets_at})

    return TestClient(create_app(title="t", prefix="/t", routers=[router]), raise_server_exceptions=False)


def test_the_unhandled_error_log_line_names_the_type_never_the_message(caplog: pytest.LogCaptureFixture) -> None:
    response = failing_app().get("/boom")
    assert response.status_code == 500 and response.json()["error"]["code"] == "INTERNAL_ERROR"
    assert SECRET_INPUT not in response.text
    # The lines as the function writes them (Powertools' JSON formatter; its stream was bound at import).
    lines = [json.loads(logger.registered_formatter.format(r)) for r in caplog.records if r.name == logger.name]
    assert lines and not any(SECRET_INPUT in json.dumps(line) for line in lines)
    [line] = [line for line in lines if line["message"] == "unhandled error"]
    assert line["error_type"] == "UntranslatableCharacter" and "boom" in line["where"]
    assert "exception" not in line  # no traceback text: its last line would quote the message


def test_quota_exceeded_carries_retry_after_and_a_trailing_slash_is_not_redirected() -> None:
    client = failing_app()
    response = client.get("/quota")
    assert response.status_code == 429 and 89 <= int(response.headers["retry-after"]) <= 90
    slashed = client.get("/quota/", headers={"host": "evil.example"}, follow_redirects=False)
    assert slashed.status_code == 404 and "location" not in slashed.headers
    assert slashed.json()["error"]["code"] == "NOT_FOUND"


class Note(BaseModel):
    metadata: Any = None


def body_routes_app() -> TestClient:
    """One route whose body FastAPI parses into a model, one that reads its body itself (`json_body`, as
    `POST /chat/stream` does)."""
    router = APIRouter()

    @router.post("/parsed")
    def parsed(note: Note) -> dict[str, bool]:
        return {"ok": True}

    @router.post("/read")
    async def read(request: Request) -> dict[str, str]:
        return {"type": type(await json_body(request)).__name__}

    return TestClient(create_app(title="t", prefix="/t", routers=[router]), raise_server_exceptions=False)


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"metadata": ' + b"[" * (depth - 1) + inner + b"]" * (depth - 1) + b"}"


UNREADABLE_BODIES = {
    "5000 nested arrays": b"[" * 5000 + b"]" * 5000,
    "5000 nested objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    # Parsed by Python's JSON parser, then too deep for any recursive walk (the guard's own search for NUL).
    "1400 levels with a NUL": nested(1400, b'"\\u0000"'),
    "one level over the limit": nested(MAX_JSON_DEPTH + 1),
    "invalid UTF-8": b'{"metadata": "\xff"}',
}


@pytest.mark.parametrize("body", UNREADABLE_BODIES.values(), ids=UNREADABLE_BODIES.keys())
@pytest.mark.parametrize("route", ["/parsed", "/read"])
def test_a_body_nested_too_deep_or_not_utf8_is_400_on_every_body_route(route: str, body: bytes) -> None:
    response = body_routes_app().post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_a_body_at_the_depth_limit_is_read() -> None:
    client = body_routes_app()
    for route in ("/parsed", "/read"):
        response = client.post(route, content=nested(MAX_JSON_DEPTH), headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text


def test_a_route_reading_its_own_body_holds_it_to_the_guards_rules_whatever_its_content_type() -> None:
    # The guard checks only bodies declared JSON; `json_body` parses whatever it is sent.
    client = body_routes_app()
    plain = {"content-type": "text/plain"}
    assert client.post("/read", content=nested(5000), headers=plain).status_code == 400
    assert client.post("/read", content=b'{"a": "\xff"}', headers=plain).status_code == 400
    unstorable = client.post("/read", content=b'{"metadata": "a\\u0000"}', headers=plain)
    assert (
        unstorable.status_code == 422 and unstorable.json()["error"]["details"]["errors"][0]["field"] == "metadata"
    )
    assert client.post("/read", content=b'{"metadata": NaN}', headers=plain).status_code == 422
    assert client.post("/read", content=b"{not json", headers=plain).status_code == 400


def test_a_cursor_holding_deeply_nested_json_is_422_not_500() -> None:
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()
    with pytest.raises(ValidationError):
        decode_cursor(deep, {"id": str})


def test_the_depth_is_read_from_the_bytes_exactly_whatever_the_strings_hold() -> None:
    def levels(count: int, filler: str) -> bytes:
        # `count` arrays, one in the other, each first holding a string `filler`
        return (f'["{filler}", ' * count + "0" + "]" * count).encode()

    for filler in ("", "]", "}]", "[[", '\\"]', "\\\\", '\\\\\\"]', "{[]}"):
        assert not nests_deeper_than(levels(MAX_JSON_DEPTH, filler), MAX_JSON_DEPTH), filler
        assert nests_deeper_than(levels(MAX_JSON_DEPTH + 1, filler), MAX_JSON_DEPTH), filler
    # Brackets in text are text: a long chat message of them nests nothing.
    assert not nests_deeper_than(json.dumps({"content": "[{" * 5000}).encode(), MAX_JSON_DEPTH)
    assert check_json_body(json.dumps({"content": "]" * 5000 + "[" * 5000}).encode()) is None
