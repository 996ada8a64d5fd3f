"""API.md's second-round contract fixes over HTTP through the local server: the AI SDK body without a
model and with the SDK's own chat ids, one timestamp form, money as decimal strings, 413 for long messages,
revisions paginated, each function logging as itself under `make dev`, and every offered model answering
offline. (QUOTA_EXCEEDED's Retry-After: test_bad_input.py; invoices' cursors: test_billing_http.py.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from local.dev_process import run_local_server
from local.fake_openrouter import FakeOpenRouter, Reply
from oneai.chat.offered_models import OFFERED_MODELS
from oneai.quota.tiers import TIERS
from tests.conftest import TEST_JWT_SECRET, TEST_SUPABASE_URL, AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, GENEROUS_RATE_LIMITS, LocalServer
from tests.sse_support import events_of

pytestmark = pytest.mark.e2e
USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9, "cost": 0.0000123}
Z_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


@pytest.fixture
def client(local_server: LocalServer) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def ai_sdk_body(text: str, **extra: Any) -> dict[str, Any]:
    """What `DefaultChatTransport` posts when left at its defaults: no `model`."""
    return {
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        "trigger": "submit-message",
        "messageId": None,
    } | extra


def usage_part(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return next(e["data"] for e in events_of(response.text) if isinstance(e, dict) and e["type"] == "data-usage")


def conversation_part(response: httpx.Response) -> dict[str, Any]:
    return next(
        e["data"] for e in events_of(response.text) if isinstance(e, dict) and e["type"] == "data-conversation"
    )


def test_an_ai_sdk_body_without_a_model_uses_the_preferred_model_else_the_plans(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a user with no preferred model: the plan's default model answers
    openrouter.script(Reply(chunks=["plan default"]))
    first = client.post("/chat/stream", json=ai_sdk_body("hello"), headers=user.headers)
    assert usage_part(first)["model"] == "openai/gpt-4o-mini"
    assert openrouter.chat_requests[0].body["model"] == "openai/gpt-4o-mini"
    # WHEN the user prefers another model THEN that one answers
    patched = client.patch(
        "/user/profile", json={"preferences": {"default_model": CHAT_MODEL}}, headers=user.headers
    )
    assert patched.status_code == 200, patched.text
    openrouter.reset()
    openrouter.script(Reply(chunks=["preferred"]), model=CHAT_MODEL)
    second = client.post("/chat/stream", json=ai_sdk_body("again"), headers=user.headers)
    assert usage_part(second)["model"] == CHAT_MODEL
    assert [r.body["model"] for r in openrouter.chat_requests if r.body.get("stream")] == [CHAT_MODEL]
    # AND a model named in the body still wins
    openrouter.script(Reply(chunks=["named"]), model="openai/gpt-4o-mini")
    named = client.post(
        "/chat/stream", json=ai_sdk_body("named", model="openai/gpt-4o-mini"), headers=user.headers
    )
    assert usage_part(named)["model"] == "openai/gpt-4o-mini"


def test_a_client_chat_id_names_the_callers_own_conversation(
    client: httpx.Client, user: AppUser, database_url: str, openrouter: FakeOpenRouter
) -> None:
    chat_id = "Xk3vQ9mZp2LwT7rB"  # the AI SDK's generateId(): not a UUID
    openrouter.script(
        Reply(chunks=["one"]),
        Reply(chunks=["two"]),
        Reply(chunks=["three"]),
        Reply(chunks=["four"]),
        model=CHAT_MODEL,
    )
    # WHEN the same chat id sends twice
    first = client.post(
        "/chat/stream", json=ai_sdk_body("first", id=chat_id, model=CHAT_MODEL), headers=user.headers
    )
    second = client.post(
        "/chat/stream", json=ai_sdk_body("second", id=chat_id, model=CHAT_MODEL), headers=user.headers
    )
    # THEN both turns are in one conversation of ours, named by our own id
    conversation_id = conversation_part(first)["id"]
    assert conversation_part(second)["id"] == conversation_id and conversation_id != chat_id
    saved = client.get(f"/conversations/{conversation_id}", headers=user.headers).json()
    assert [m["content"] for m in saved["messages"]] == ["first", "one", "second", "two"]
    # AND regenerating by the same chat id answers that conversation's last message again
    regenerated = client.post(
        "/chat/stream",
        json=ai_sdk_body("second", id=chat_id, model=CHAT_MODEL, trigger="regenerate-message"),
        headers=user.headers,
    )
    assert conversation_part(regenerated)["id"] == conversation_id
    # AND another user with the same chat id gets a conversation of their own
    other = create_user(database_url)
    theirs = client.post(
        "/chat/stream", json=ai_sdk_body("mine", id=chat_id, model=CHAT_MODEL), headers=other.headers
    )
    assert conversation_part(theirs)["id"] != conversation_id
    assert [c["id"] for c in client.get("/conversations", headers=user.headers).json()["items"]] == [
        conversation_id
    ]
    # AND regenerating an unknown chat id is 404, and ids outside 1..128 characters are 422
    unknown = client.post(
        "/chat/stream",
        json=ai_sdk_body("x", id="never-used", model=CHAT_MODEL, trigger="regenerate-message"),
        headers=user.headers,
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
    too_long = client.post("/chat/stream", json=ai_sdk_body("x", id="x" * 129), headers=user.headers)
    assert too_long.status_code == 422 and too_long.json()["error"]["details"]["errors"][0]["field"] == "id"


def test_shared_snapshots_and_json_exports_write_times_with_z(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    import re

    openrouter.script(Reply(chunks=["a reply"]), model=CHAT_MODEL)
    streamed = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "share me"}, headers=user.headers)
    conversation_id = conversation_part(streamed)["id"]
    token = client.post(f"/conversations/{conversation_id}/share", headers=user.headers).json()["token"]
    shared = httpx.get(f"{client.base_url}/shared/{token}", timeout=30).json()
    times = [shared["created_at"], *(m["created_at"] for m in shared["messages"])]
    exported = json.loads(client.get(f"/conversations/{conversation_id}/export", headers=user.headers).content)
    times += [
        exported["exported_at"],
        exported["conversation"]["created_at"],
        exported["conversation"]["updated_at"],
    ]
    times += [m["created_at"] for m in exported["messages"]]
    assert len(times) == 8 and all(re.match(Z_TIME, t) for t in times), times


def test_money_is_a_decimal_string_in_the_stream_and_in_usage(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Reply(chunks=["priced"], usage=USAGE), model=CHAT_MODEL)
    cost = usage_part(
        client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "hi"}, headers=user.headers)
    )["cost"]
    assert isinstance(cost, str) and Decimal(cost) > 0 and "e" not in cost.lower()
    report = client.get("/user/usage", headers=user.headers).json()
    assert report["totals"]["cost"] == cost and [row["cost"] for row in report["items"]] == [cost]


def test_a_message_over_the_limit_is_413_in_either_body(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    too_long = "x" * 100_001
    native = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": too_long}, headers=user.headers)
    ai_sdk = client.post("/chat/stream", json=ai_sdk_body(too_long), headers=user.headers)
    for response in (native, ai_sdk):
        assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert client.get("/conversations", headers=user.headers).json()["items"] == []
    assert openrouter.chat_requests == []


def test_revisions_are_a_page_with_a_cursor(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(*(Reply(chunks=[f"take {n}"]) for n in range(4)), model=CHAT_MODEL)
    first = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "q"}, headers=user.headers)
    conversation_id = conversation_part(first)["id"]
    for _ in range(3):
        regenerated = client.post(
            "/chat/stream",
            json={"model": CHAT_MODEL, "conversation_id": conversation_id, "action": "regenerate"},
            headers=user.headers,
        )
        assert regenerated.status_code == 200
    reply_id = client.get(f"/conversations/{conversation_id}", headers=user.headers).json()["messages"][1]["id"]
    path = f"/conversations/{conversation_id}/messages/{reply_id}/revisions"
    walked, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(path, params=params, headers=user.headers).json()
        assert set(page) == {"items", "next_cursor"}
        walked += [m["content"] for m in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert (walked, pages) == (["take 0", "take 1", "take 2", "take 3"], 2)


def request_lines(log: str) -> list[dict[str, Any]]:
    lines = []
    for raw in log.splitlines():
        if raw.startswith("{"):
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                lines.append(parsed)
    return lines


def test_under_make_dev_each_function_logs_as_itself_with_each_requests_own_id(
    local_server: LocalServer, client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    marker = f"/conversations/{'0' * 8}-0000-4000-8000-{os.getpid():012d}"
    # GIVEN requests to a buffered function and to the streaming one, interleaved
    assert client.get(marker, headers=user.headers).status_code == 404
    for _ in range(2):
        openrouter.script(Reply(chunks=["logged"]), model=CHAT_MODEL)
        streamed = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "hi"}, headers=user.headers)
        assert streamed.status_code == 200
        assert client.get("/chat/models", headers=user.headers).status_code == 200
    # THEN the streaming function's request lines name it, each with its own request ids
    lines = request_lines(local_server.log)
    chat_lines = [
        line for line in lines if line.get("message") == "request" and line.get("path") == "/chat/stream"
    ]
    assert len(chat_lines) >= 2
    for line in chat_lines[-2:]:
        assert line["function_name"] == "ChatStreamFunction", line
    assert len({line["correlation_id"] for line in chat_lines[-2:]}) == 2
    assert len({line["function_request_id"] for line in chat_lines[-2:]}) == 2
    # AND no line of the chat function carries the conversations function's name
    assert not any(
        line.get("path", "").startswith("/chat/") and line.get("function_name") == "ConversationsFunction"
        for line in lines
    )


@pytest.fixture(scope="module")
def offline_server(database_url: str) -> Iterator[LocalServer]:
    """`make dev` as a developer without OPENROUTER_API_KEY runs it: the offline stand-ins answer."""
    env = {
        "DATABASE_URL": database_url,
        "SUPABASE_URL": TEST_SUPABASE_URL,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "OPENROUTER_API_KEY": "",
        **GENEROUS_RATE_LIMITS,
    }
    with run_local_server(env) as server:
        yield server


def test_offline_every_offered_model_answers_and_says_it_is_a_stand_in(
    offline_server: LocalServer, database_url: str
) -> None:
    user = create_user(database_url)
    with httpx.Client(base_url=offline_server.base_url, timeout=60) as offline:
        listed = {m["id"]: m for m in offline.get("/chat/models", headers=user.headers).json()["items"]}
        assert set(listed) == {m.model_id for m in OFFERED_MODELS}
        assert all("offline" in m["name"].lower() for m in listed.values())
        # WHEN the free tier sends to each model it may use THEN each answers, on its own quota key
        used: dict[str, int] = {}
        for offered in OFFERED_MODELS:
            if "free" not in offered.tiers:
                continue
            response = offline.post(
                "/chat/stream", json={"model": offered.model_id, "content": "hi"}, headers=user.headers
            )
            part = usage_part(response)
            assert part["model"] == offered.model_id and part["quota"]["quota_key"] == offered.quota_key
            used[offered.quota_key] = part["quota"]["used"]
        assert set(used) == set(TIERS["free"].quotas)  # every quota key was exercised


def test_every_list_route_answers_items_and_next_cursor(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Reply(chunks=["listed"]), model=CHAT_MODEL)
    streamed = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "list me"}, headers=user.headers)
    conversation_id = conversation_part(streamed)["id"]
    message_id = client.get(f"/conversations/{conversation_id}", headers=user.headers).json()["messages"][0]["id"]
    routes = [
        "/conversations",
        f"/conversations/{conversation_id}/messages",
        f"/conversations/{conversation_id}/messages/{message_id}/revisions",
        "/chat/history",
        "/chat/models",
        "/subscription/plans",
        "/subscription/invoices",
    ]
    for route in routes:
        response = client.get(route, headers=user.headers)
        assert response.status_code == 200, (route, response.text)
        body = response.json()
        assert {"items", "next_cursor"} <= set(body) and body["next_cursor"] is None, route
