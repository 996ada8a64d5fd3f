"""The OpenAI-compatible API (`/v1`) through the official `openai` Python SDK, as a customer uses it: a
key made with `POST /user/api-keys`, the local server's `/v1` as `base_url`. A local server of its own,
with a tight chat rate limit (three replies, then one a minute)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter, MidStreamError, Reply, Status
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, use_up_small_messages
from tests.e2e.limited_server import limited_server

pytestmark = pytest.mark.e2e

CHAT_BURST = 3
LIMITS = {"ONEAI_CHAT_RATE_LIMIT_PER_MINUTE": "1", "ONEAI_CHAT_RATE_LIMIT_BURST": str(CHAT_BURST)}
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"},
]


@pytest.fixture(scope="module")
def server(database_url: str, fake_openrouter_server: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    with limited_server("openai-sdk", database_url, fake_openrouter_server, LIMITS) as running:
        yield running


@pytest.fixture
def http(server: LocalServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


def new_key(http: httpx.Client, user: AppUser, name: str = "laptop") -> dict[str, Any]:
    response = http.post("/user/api-keys", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def sdk(server: LocalServerProcess, key: str) -> openai.OpenAI:
    # No retries: each call is one request, so the tests see every answer.
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0, timeout=30)


def test_given_a_key_then_the_sdk_lists_the_models_of_the_callers_plan(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    key = new_key(http, alice)["key"]
    models = {m.id for m in sdk(server, key).models.list()}
    assert CHAT_MODEL in models and "openai/gpt-4o" in models
    assert "anthropic/claude-opus-4" not in models  # enterprise only; alice is on the free plan


def test_given_a_key_when_completing_without_streaming_then_the_reply_and_usage_come_back_and_are_recorded_under_the_key(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    created = new_key(http, alice)
    openrouter.script(
        Reply(chunks=["Hel", "lo!"], usage={"prompt_tokens": 12, "completion_tokens": 2, "cost": 0.0001})
    )
    completion = sdk(server, created["key"]).chat.completions.create(
        model=CHAT_MODEL, messages=MESSAGES, temperature=0.2
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 2)
    # What went upstream: the caller's messages as sent, and the passed-through parameter.
    upstream = openrouter.chat_requests[-1].body
    assert upstream["messages"] == MESSAGES and upstream["temperature"] == 0.2
    # Stateless: no conversation kept; the usage is, under the key, and the quota counted one unit.
    assert http.get("/conversations", headers=alice.headers).json()["items"] == []
    usage = http.get("/user/usage", params={"group_by": "api_key"}, headers=alice.headers).json()
    assert [(g["group"], g["messages"], g["prompt_tokens"]) for g in usage["items"]] == [(created["id"], 1, 12)]
    quotas = http.get("/user/quota", headers=alice.headers).json()["quotas"]
    assert quotas["small_messages"]["used"] == 1


def test_given_a_key_when_streaming_with_include_usage_then_the_text_streams_and_the_last_chunk_has_the_usage(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    key = new_key(http, alice)["key"]
    openrouter.script(
        Reply(chunks=["One ", "two ", "three"], usage={"prompt_tokens": 7, "completion_tokens": 3, "cost": 0.0001})
    )
    stream = sdk(server, key).chat.completions.create(
        model=CHAT_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (7, 3, 10)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_given_a_stream_without_include_usage_then_no_usage_chunk_is_sent(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    key = new_key(http, alice)["key"]
    openrouter.script(Reply(chunks=["a", "b"]))
    chunks = list(sdk(server, key).chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ab"


def test_given_tools_then_they_are_passed_through_to_openrouter(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    key = new_key(http, alice)["key"]
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    sdk(server, key).chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, tools=tools, tool_choice="auto")
    upstream = openrouter.chat_requests[-1].body
    assert upstream["tools"] == tools and upstream["tool_choice"] == "auto"


def test_given_a_revoked_or_unknown_key_or_a_web_token_then_the_sdk_raises_authentication_error(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    created = new_key(http, alice)
    client = sdk(server, created["key"])
    assert client.models.list().data
    assert http.delete(f"/user/api-keys/{created['id']}", headers=alice.headers).status_code == 204
    for key in (created["key"], "oneai_sk_" + "x" * 54, "not-a-key", alice.token):
        with pytest.raises(openai.AuthenticationError) as raised:
            sdk(server, key).chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
        assert raised.value.code == "invalid_api_key"
        assert raised.value.status_code == 401
    listed = http.get("/user/api-keys", headers=alice.headers).json()["items"]
    assert [(k["id"], k["revoked_at"] is not None) for k in listed] == [(created["id"], True)]
    assert "key" not in listed[0] and listed[0]["prefix"] == created["prefix"]
    assert listed[0]["last_used_at"] is not None


def test_given_a_key_then_web_routes_do_not_accept_it(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    key = new_key(http, alice)["key"]
    response = http.get("/user/quota", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_given_a_drained_chat_bucket_then_the_sdk_raises_rate_limit_error_rate_limit_exceeded(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    for _ in range(CHAT_BURST):
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    assert raised.value.code == "rate_limit_exceeded"
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert raised.value.response.headers["ratelimit"].startswith('"chat";r=0;')


def test_given_models_outside_the_plan_or_unknown_then_403_and_404_model_not_found(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="anthropic/claude-opus-4", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nobody/no-such-model", messages=MESSAGES)
    assert raised.value.code == "model_not_found"


def test_given_the_model_fails_before_its_first_token_then_the_unit_is_refunded(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    openrouter.script(*[Status(503)] * 4)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert raised.value.status_code >= 500
    assert isinstance(raised.value.body, dict) and set(raised.value.body) >= {"message", "type", "code"}
    quotas = http.get("/user/quota", headers=alice.headers).json()["quotas"]
    assert quotas["small_messages"]["used"] == 0


def test_given_a_suspended_user_then_their_key_stops_working(
    server: LocalServerProcess, http: httpx.Client, database_url: str
) -> None:
    bob = create_user(database_url)
    client = sdk(server, new_key(http, bob)["key"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.users set suspended_at = now() where id = %s", (bob.id,))
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.models.list()
    assert raised.value.code == "account_suspended"


def usage_statuses(database_url: str, user: AppUser) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "select status from public.usage_records where user_id = %s order by created_at", (user.id,)
        ).fetchall()
    return [row[0] for row in rows]


def test_given_the_model_fails_mid_stream_then_the_stream_ends_with_an_error_and_the_partial_reply_counts(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    openrouter.script(MidStreamError(after_chunks=["Partial ", "answer"], message="provider died"))
    received: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Partial answer"
    assert raised.value.code == "upstream_error"
    assert http.get("/user/quota", headers=alice.headers).json()["quotas"]["small_messages"]["used"] == 1
    assert usage_statuses(database_url, alice) == ["incomplete"]


def test_given_the_model_fails_midway_without_streaming_then_502_and_the_unit_is_given_back(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    openrouter.script(MidStreamError(after_chunks=["Partial"], message="provider died"))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert raised.value.status_code == 502
    assert http.get("/user/quota", headers=alice.headers).json()["quotas"]["small_messages"]["used"] == 0
    assert usage_statuses(database_url, alice) == ["error"]


def small_messages_used(http: httpx.Client, user: AppUser) -> int:
    used: int = http.get("/user/quota", headers=user.headers).json()["quotas"]["small_messages"]["used"]
    return used


@pytest.mark.parametrize("stream", [False, True])
def test_given_messages_openai_would_refuse_then_bad_request_error_naming_the_param_and_no_unit_is_spent(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, stream: bool
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    asked = len(openrouter.chat_requests)
    cases: list[tuple[list[Any], str, str]] = [
        ([{"role": "wizard", "content": "hi"}], "messages[0].role", "invalid_value"),
        ([{"role": "user", "content": 5}], "messages[0].content", "invalid_type"),
        ([*MESSAGES, {"role": "user"}], "messages[2].content", "missing_required_parameter"),
        (
            [{"role": "user", "content": [{"type": "text"}]}],
            "messages[0].content[0].text",
            "missing_required_parameter",
        ),
        ([{"role": "tool", "content": "42"}], "messages[0].tool_call_id", "missing_required_parameter"),
    ]
    for messages, param, code in cases:
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model=CHAT_MODEL, messages=messages, stream=stream)
        assert raised.value.status_code == 400
        assert (raised.value.type, raised.value.param, raised.value.code) == ("invalid_request_error", param, code)
        assert param in raised.value.message
    # AND nothing was reserved, nor asked of the model
    assert small_messages_used(http, alice) == 0
    assert len(openrouter.chat_requests) == asked


def test_given_bodies_the_api_cannot_read_or_accept_then_400_in_openais_shape_and_no_unit_is_spent(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser
) -> None:
    key = new_key(http, alice)["key"]
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    good = json.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    cases: list[tuple[bytes, str | None, str | None]] = [
        (b"[" * 5000 + b"]" * 5000, None, None),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, None, None),
        (good.encode().replace(b'"hi"', b'"\xff"'), None, None),  # not UTF-8
        ((good[:-1] + ', "temperature": NaN}').encode(), None, None),
        (good[:-1].encode(), None, None),  # not JSON
        (good.replace('"hi"', '"a\\u0000b"').encode(), "messages[0].content", "invalid_value"),
        (good.replace('"hi"', '"\\udc00"').encode(), "messages[0].content", "invalid_value"),
        (json.dumps({"messages": MESSAGES}).encode(), "model", "missing_required_parameter"),
        (json.dumps({"model": CHAT_MODEL, "messages": []}).encode(), "messages", "empty_array"),
        ((good[:-1] + ', "stream": "often"}').encode(), "stream", "invalid_type"),
    ]
    for body, param, code in cases:
        response = http.post("/v1/chat/completions", content=body, headers=headers)
        assert response.status_code == 400, (body[:80], response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        assert (error["param"], error["code"]) == (param, code), body[:80]
    assert small_messages_used(http, alice) == 0


@pytest.mark.parametrize("stream", [False, True])
def test_given_a_used_up_quota_then_insufficient_quota_says_when_to_retry(
    server: LocalServerProcess, http: httpx.Client, alice: AppUser, database_url: str, stream: bool
) -> None:
    client = sdk(server, new_key(http, alice)["key"])
    resets_at = use_up_small_messages(database_url, alice.id)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=stream)
    assert raised.value.code == "insufficient_quota"
    seconds = int(raised.value.response.headers["retry-after"])
    assert abs(seconds - (resets_at - datetime.now(UTC)).total_seconds()) <= 5
