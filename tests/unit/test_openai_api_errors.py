"""Every error of the OpenAI-compatible API (`/v1`) in OpenAI's shape, on the chat app as it is deployed
(no network, no database: each of these is refused before the key is looked up): bodies the app cannot
read, text the database cannot store, bodies over the limit, messages OpenAI would refuse. A real 5xx is
logged and counted; a quota refusal says when to retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chat_stream.app import build_app as chat_app
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from oneai import observability
from oneai.chat.openai_messages import check_messages
from oneai.config import override_settings
from oneai.errors import QuotaExceededError, ValidationError
from oneai.logging import logger
from oneai.web.inputs import MAX_JSON_DEPTH
from oneai.web.openai_errors import install_openai_error_handlers, openai_error_body, openai_error_response

COMPLETIONS = "/v1/chat/completions"
GOOD = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    emitted: list[str] = []
    monkeypatch.setattr(observability, "emit_metric", lambda name, *_, **__: emitted.append(name))
    return emitted


@pytest.fixture
def client() -> Iterator[TestClient]:
    with override_settings(max_body_bytes=65536):
        yield TestClient(chat_app(), raise_server_exceptions=False)


def openai_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    return error


UNREADABLE = {
    "5000 nested arrays": b"[" * 5000 + b"]" * 5000,
    "5000 nested objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "messages nested over the limit": b'{"model": "m", "messages": '
    + b"[" * MAX_JSON_DEPTH
    + b"]" * MAX_JSON_DEPTH
    + b"}",
    "invalid UTF-8 in a content": b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}',
    "malformed JSON": b'{"model": "m", "messages": [',
    "NaN": b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_body_that_cannot_be_read_is_400_in_openais_shape(
    client: TestClient, metrics: list[str], body: bytes
) -> None:
    response = client.post(COMPLETIONS, content=body, headers={"content-type": "application/json"})
    error = openai_error(response, 400)
    assert error["type"] == "invalid_request_error" and error["param"] is None
    assert "ServerErrors" not in metrics


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (r"a\u0000b", "messages[0].content"),
        (r"\udc00", "messages[0].content"),
    ],
)
def test_text_the_database_cannot_store_is_400_invalid_value_naming_the_param(
    client: TestClient, raw: str, param: str
) -> None:
    body = '{"model": "m", "messages": [{"role": "user", "content": "' + raw + '"}]}'
    response = client.post(COMPLETIONS, content=body.encode(), headers={"content-type": "application/json"})
    error = openai_error(response, 400)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, "invalid_value")


def test_a_body_over_the_limit_is_413_in_openais_shape_and_the_web_routes_keep_the_envelope(
    client: TestClient,
) -> None:
    big = GOOD[:-1] + b', "pad": "' + b"x" * 70000 + b'"}'
    error = openai_error(client.post(COMPLETIONS, content=big, headers={"content-type": "application/json"}), 413)
    assert error["code"] == "payload_too_large"
    web = client.post("/chat/stream", content=big, headers={"content-type": "application/json"})
    assert web.status_code == 413 and web.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_an_unknown_route_is_404_in_openais_shape(client: TestClient) -> None:
    error = openai_error(client.get("/v1/no-such-route"), 404)
    assert error["type"] == "invalid_request_error"


def failing_v1_app() -> TestClient:
    app = FastAPI()
    install_openai_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret words of the user")

    @app.get("/unavailable")
    def unavailable() -> None:
        raise HTTPException(status_code=503)

    return TestClient(app, raise_server_exceptions=False)


def test_a_real_5xx_is_logged_counted_and_in_openais_shape(
    metrics: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    client = failing_v1_app()
    error = openai_error(client.get("/boom"), 500)
    assert error["type"] == "server_error" and "secret" not in json.dumps(error)
    assert metrics.count("ServerErrors") == 1
    lines = [json.loads(logger.registered_formatter.format(r)) for r in caplog.records if r.name == logger.name]
    [line] = [line for line in lines if line["message"] == "unhandled error"]
    assert line["error_type"] == "RuntimeError" and "secret" not in json.dumps(line)
    assert "exception" not in line  # no traceback: its last line would quote the message
    openai_error(client.get("/unavailable"), 500)
    assert metrics.count("ServerErrors") == 2


def test_insufficient_quota_says_when_to_retry() -> None:
    resets_at = (datetime.now(UTC) + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    response = openai_error_response(
        QuotaExceededError(details={"quota_key": "small_messages", "resets_at": resets_at})
    )
    assert response.status_code == 429 and 89 <= int(response.headers["retry-after"]) <= 90
    assert json.loads(response.body)["error"]["code"] == "insufficient_quota"


def refusal(messages: list[Any]) -> tuple[str | None, str | None]:
    with pytest.raises(ValidationError) as raised:
        check_messages(messages)
    _, body = openai_error_body(raised.value)
    return body["error"]["param"], body["error"]["code"]


def test_messages_are_checked_as_openai_checks_them() -> None:
    user = {"role": "user", "content": "hi"}
    assert refusal([{"role": "wizard", "content": "hi"}]) == ("messages[0].role", "invalid_value")
    assert refusal([user, {"role": "user", "content": 5}]) == ("messages[1].content", "invalid_type")
    assert refusal([{"content": "hi"}]) == ("messages[0].role", "missing_required_parameter")
    assert refusal([{"role": 1, "content": "hi"}]) == ("messages[0].role", "invalid_type")
    assert refusal([{"role": "user"}]) == ("messages[0].content", "missing_required_parameter")
    assert refusal([{"role": "user", "content": None}]) == ("messages[0].content", "invalid_type")
    assert refusal([{"role": "user", "content": ["hi"]}]) == ("messages[0].content[0]", "invalid_type")
    assert refusal([{"role": "user", "content": [{"text": "hi"}]}]) == (
        "messages[0].content[0].type",
        "missing_required_parameter",
    )
    assert refusal([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]) == (
        "messages[0].content[0].type",
        "invalid_value",
    )
    assert refusal([{"role": "user", "content": [{"type": "text", "text": 3}]}]) == (
        "messages[0].content[0].text",
        "invalid_type",
    )
    assert refusal([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]) == (
        "messages[0].content[0].image_url.url",
        "missing_required_parameter",
    )
    assert refusal([{"role": "tool", "content": "42"}]) == (
        "messages[0].tool_call_id",
        "missing_required_parameter",
    )
    # AND what OpenAI accepts passes
    check_messages(
        [
            {"role": "developer", "content": "Be terse."},
            {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ]
    )


def test_the_openai_message_names_the_param() -> None:
    with pytest.raises(ValidationError) as raised:
        check_messages([{"role": "wizard", "content": "hi"}])
    _, body = openai_error_body(raised.value)
    assert body["error"]["message"].startswith("Invalid value for 'messages[0].role': 'wizard'")
    assert "'developer'" in body["error"]["message"]
