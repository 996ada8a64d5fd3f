"""`POST /chat/stream` over HTTP through the local server, against the fake OpenRouter (real HTTP, real
SSE): the stream a client reads, what is saved, and what is counted against the quota."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_openrouter import FakeOpenRouter, Hang, MidStreamError, Reply, Status
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, LocalServer
from tests.sse_support import events_of

pytestmark = pytest.mark.e2e
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": 0.00042}


@pytest.fixture
def client(local_server: LocalServer) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def chat(client: httpx.Client, user: AppUser, **body: Any) -> httpx.Response:
    return client.post("/chat/stream", json={"model": CHAT_MODEL} | body, headers=user.headers)


def quota_used(database_url: str, user: AppUser, key: str = "small_messages") -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select used_count from public.usage_quotas where user_id = %s and quota_key = %s", (user.id, key)
        ).fetchone()
    assert row is not None
    return int(row[0])


def set_quota(database_url: str, user: AppUser, used: int, key: str = "small_messages") -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = %s where user_id = %s and quota_key = %s",
            (used, user.id, key),
        )


def messages_of(client: httpx.Client, user: AppUser, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/conversations/{conversation_id}", headers=user.headers)
    assert response.status_code == 200
    return list(response.json()["messages"])


def test_a_reply_streams_as_ai_sdk_parts_and_is_saved_with_its_usage(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN an upstream that sends keep-alive comments, three pieces of text and a usage-only last chunk
    openrouter.script(Reply(chunks=["Hel", "lo ", "world"], usage=USAGE, keepalives_before=2), model=CHAT_MODEL)
    # WHEN the user sends a first message
    response = chat(client, user, content="Say hello")
    # THEN the stream is the AI SDK UI message stream v1, in the order of docs/api/chat.md
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["cache-control"] == "no-cache"
    events = events_of(response.text)
    types = [e if isinstance(e, str) else e["type"] for e in events]
    assert types[:3] == ["start", "data-conversation", "text-start"]
    assert types[-2:] == ["finish", "[DONE]"]
    assert (
        "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta") == "Hello world"
    )
    assert types.index("text-end") < types.index("data-usage") < types.index("finish")
    conversation = events[1]["data"]
    usage = next(e["data"] for e in events if isinstance(e, dict) and e["type"] == "data-usage")
    assert usage["model"] == CHAT_MODEL
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (12, 3, "0.00042")
    assert usage["quota"] == {
        "quota_key": "small_messages", "used": 1, "limit": 100, "remaining": 99,
        "resets_at": usage["quota"]["resets_at"],
    }  # fmt: skip
    # AND the conversation was created with both messages, the reply under the announced id
    saved = messages_of(client, user, conversation["id"])
    assert [(m["role"], m["content"], m["status"]) for m in saved] == [
        ("user", "Say hello", "complete"),
        ("assistant", "Hello world", "complete"),
    ]
    assert saved[1]["id"] == events[0]["messageId"] and saved[0]["id"] == conversation["user_message_id"]
    assert saved[1]["model_id"] == CHAT_MODEL and saved[1]["tokens_used"] == 15
    # AND one usage record, and one unit counted
    with psycopg.connect(database_url) as conn:
        record = conn.execute(
            "select model_id, prompt_tokens, completion_tokens, cost, status, generation_id is not null"
            " from public.usage_records where user_id = %s",
            (user.id,),
        ).fetchall()
    assert [(r[0], r[1], r[2], float(r[3]), r[4], r[5]) for r in record] == [
        (CHAT_MODEL, 12, 3, 0.00042, "complete", True)
    ]
    assert quota_used(database_url, user) == 1
    # AND the first exchange gave the conversation a title (by the title model, not counted)
    titled = [e["data"]["title"] for e in events if isinstance(e, dict) and e["type"] == "data-conversation"]
    assert titled[0] is None and titled[-1]
    assert client.get(f"/conversations/{conversation['id']}", headers=user.headers).json()["title"] == titled[-1]


def test_the_model_that_served_the_reply_is_the_one_billed(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    openrouter.script(Reply(chunks=["ok"], served_model="openai/gpt-4o-mini", usage=USAGE), model=CHAT_MODEL)
    events = events_of(chat(client, user, content="hi").text)
    usage = next(e["data"] for e in events if isinstance(e, dict) and e["type"] == "data-usage")
    assert usage["model"] == "openai/gpt-4o-mini"
    saved = messages_of(client, user, events[1]["data"]["id"])
    assert saved[1]["model_id"] == "openai/gpt-4o-mini"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select requested_model, model_id from public.usage_records where user_id = %s", (user.id,)
        ).fetchone()
    assert row == (CHAT_MODEL, "openai/gpt-4o-mini")


def test_rate_limited_upstream_is_retried_after_retry_after(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Status(429, retry_after=1), Reply(chunks=["after ", "waiting"]), model=CHAT_MODEL)
    started = time.monotonic()
    response = chat(client, user, content="hi")
    assert response.status_code == 200
    assert "after waiting" in "".join(e.get("delta", "") for e in events_of(response.text) if isinstance(e, dict))
    chat_requests = [r for r in openrouter.chat_requests if r.body and r.body.get("stream")]
    assert len(chat_requests) == 2 and time.monotonic() - started >= 1.0


@pytest.mark.parametrize("status", [402, 400, 401, 403])
def test_errors_a_retry_cannot_fix_are_not_retried_and_refund_the_unit(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str, status: int
) -> None:
    openrouter.script(Status(status), model=CHAT_MODEL)
    response = chat(client, user, content="hi")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert "sk-or" not in response.text
    assert len([r for r in openrouter.chat_requests if r.body and r.body.get("stream")]) == 1
    assert quota_used(database_url, user) == 0


def test_an_error_after_the_first_token_keeps_the_partial_reply_as_incomplete(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    openrouter.script(
        MidStreamError(after_chunks=["Partial ", "answer"], message="provider died"), model=CHAT_MODEL
    )
    response = chat(client, user, content="hi")
    assert response.status_code == 200
    events = events_of(response.text)
    types = [e if isinstance(e, str) else e["type"] for e in events]
    assert types[-3:] == ["text-end", "error", "[DONE]"] and "finish" not in types
    assert "partial reply was kept" in events[-2]["errorText"] and "provider died" not in events[-2]["errorText"]
    saved = messages_of(client, user, events[1]["data"]["id"])
    assert (saved[1]["content"], saved[1]["status"]) == ("Partial answer", "incomplete")
    # the user received part of a reply: the unit stays counted
    assert quota_used(database_url, user) == 1


def test_an_upstream_that_never_sends_a_token_times_out_and_refunds(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    openrouter.script(Hang(before_first_token=True, keepalive_interval=0.2), model=CHAT_MODEL)
    started = time.monotonic()
    response = chat(client, user, content="hello?")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
    assert time.monotonic() - started < 10
    assert quota_used(database_url, user) == 0
    # the user's message is kept (nothing lost); regenerating answers it
    openrouter.script(Reply(chunks=["Here", " now"]), model=CHAT_MODEL)
    conversation = client.get("/conversations", headers=user.headers).json()["items"][0]["id"]
    retry = chat(client, user, conversation_id=conversation, action="regenerate")
    assert retry.status_code == 200
    assert [(m["role"], m["content"]) for m in messages_of(client, user, conversation)] == [
        ("user", "hello?"),
        ("assistant", "Here now"),
    ]


def test_quota_exhausted_is_429_with_details_and_writes_nothing(
    client: httpx.Client, user: AppUser, database_url: str
) -> None:
    set_quota(database_url, user, 100)
    response = chat(client, user, content="one more")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert set(error["details"]) == {"quota_key", "used", "limit", "resets_at", "tier"}
    assert (error["details"]["used"], error["details"]["limit"], error["details"]["tier"]) == (100, 100, "free")
    assert client.get("/conversations", headers=user.headers).json()["items"] == []


def test_models_outside_the_tier_are_403_and_unknown_ones_422(client: httpx.Client, user: AppUser) -> None:
    assert chat(client, user, model="anthropic/claude-sonnet-4", content="hi").status_code == 403
    unknown = chat(client, user, model="acme/not-a-model", content="hi")
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["errors"][0]["field"] == "model"
    listed = client.get("/chat/models", headers=user.headers).json()["items"]
    by_id = {m["id"]: m for m in listed}
    assert by_id["anthropic/claude-sonnet-4"]["available"] is False
    assert by_id[CHAT_MODEL]["available"] is True and by_id[CHAT_MODEL]["quota_key"] == "small_messages"
    assert "openrouter/auto" not in by_id  # upstream models we do not offer are not listed
    assert set(by_id[CHAT_MODEL]) == {
        "id", "name", "context_length", "pricing", "modalities", "quota_key", "available",
    }  # fmt: skip


def test_bad_bodies_are_400_or_422(client: httpx.Client, user: AppUser) -> None:
    malformed = client.post(
        "/chat/stream", content=b"{", headers=user.headers | {"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert chat(client, user, content="").status_code == 422
    assert chat(client, user, action="edit", content="x").status_code == 422  # no message_id
    missing = chat(client, user, conversation_id=str(uuid.uuid4()), content="x")
    assert missing.status_code == 404


def test_edit_and_regenerate_follow_the_revision_rules(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Reply(chunks=["first answer"]), Reply(chunks=["second answer"]), model=CHAT_MODEL)
    first = events_of(chat(client, user, content="question").text)
    cid = first[1]["data"]["id"]
    question_id, answer_id = first[1]["data"]["user_message_id"], first[0]["messageId"]
    # regenerate the answer: a new revision at position 2
    regenerated = events_of(
        chat(client, user, conversation_id=cid, action="regenerate", message_id=answer_id).text
    )
    assert regenerated[-2] == {"type": "finish"}
    current = messages_of(client, user, cid)
    assert [(m["sequence_number"], m["revision_number"], m["content"]) for m in current] == [
        (1, 0, "question"),
        (2, 1, "second answer"),
    ]
    # edit the question: a new revision at position 1, and a new answer after it
    openrouter.script(Reply(chunks=["third answer"]), model=CHAT_MODEL)
    edited = chat(
        client, user, conversation_id=cid, action="edit", message_id=question_id, content="better question"
    )
    assert edited.status_code == 200
    current = messages_of(client, user, cid)
    assert [(m["sequence_number"], m["revision_number"], m["role"], m["content"]) for m in current] == [
        (1, 1, "user", "better question"),
        (2, 2, "assistant", "third answer"),
    ]
    # editing the old revision again is a conflict
    stale = chat(client, user, conversation_id=cid, action="edit", message_id=question_id, content="x")
    assert stale.status_code == 409


def test_the_ai_sdk_transport_body_is_accepted(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    chat_id = str(uuid.uuid4())
    openrouter.script(Reply(chunks=["from the sdk"]), Reply(chunks=["again"]), model=CHAT_MODEL)
    body = {
        "id": chat_id,
        "model": CHAT_MODEL,
        "trigger": "submit-message",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi from useChat"}]}],
    }
    first = client.post("/chat/stream", json=body, headers=user.headers)
    assert first.status_code == 200
    assert events_of(first.text)[1]["data"]["id"] == chat_id  # the chat's id names the conversation
    regenerate = client.post(
        "/chat/stream", json=body | {"trigger": "regenerate-message", "messageId": None}, headers=user.headers
    )
    assert regenerate.status_code == 200
    assert [m["content"] for m in messages_of(client, user, chat_id)] == ["Hi from useChat", "again"]


def test_fifty_simultaneous_requests_with_ten_units_left_admit_exactly_ten(
    local_server: LocalServer, database_url: str, openrouter: FakeOpenRouter
) -> None:
    user = create_user(database_url)
    set_quota(database_url, user, 90)  # 10 of 100 left

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=local_server.base_url, timeout=60, limits=limits) as http:
            start = asyncio.Event()

            async def one(i: int) -> int:
                await start.wait()
                response = await http.post(
                    "/chat/stream", json={"model": CHAT_MODEL, "content": f"message {i}"}, headers=user.headers
                )
                return response.status_code

            tasks = [asyncio.create_task(one(i)) for i in range(50)]
            await asyncio.sleep(0.2)
            start.set()
            return await asyncio.gather(*tasks)

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40, statuses
    assert quota_used(database_url, user) == 100


def test_fallback_models_from_the_catalog_are_sent_and_the_reply_is_billed_as_served(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a titled conversation (no title request races the reply) and a model with a fallback
    cid = client.post("/conversations", json={"title": "fallbacks"}, headers=user.headers).json()["id"]
    openrouter.script(Reply(chunks=["from the fallback"], served_model="google/gemini-2.5-flash"))
    response = chat(client, user, model="openai/gpt-4o-mini", conversation_id=cid, content="hi")
    assert response.status_code == 200
    sent = next(r.body for r in openrouter.chat_requests if r.body and r.body.get("stream"))
    assert sent["models"] == ["openai/gpt-4o-mini", "google/gemini-2.5-flash"]
    assert sent["stream"] is True and sent["usage"] == {"include": True}
    assert messages_of(client, user, cid)[-1]["model_id"] == "google/gemini-2.5-flash"
