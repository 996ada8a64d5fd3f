"""A chat turn makes one database round trip before the upstream request, and one to finish (issue 11).

Counted on the wire: the local server talks to PostgreSQL through a TCP proxy (local/pg_proxy.py) that
counts round trips (a client burst after the server answered). The fake OpenRouter records when the
upstream request arrived, on the same clock: the round trips from the request's start until then are what
the user waits for before the model is even asked. The measured turn is the second of its conversation
(its connection is warm and no title is generated), as most turns are.

The server keeps no parts for resuming (ONEAI_REPLY_PERSISTENCE=false): those are the resumable reply's own
writes (issue 16: a batch every 0.3 s at most, in the background of the stream, never before the first
token), counted per reply by bench/chat_stream.py; what is counted here is the turn's own prepare and finish.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter, Reply
from local.pg_proxy import PgRoundTripProxy
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, GENEROUS_RATE_LIMITS, TITLE_MODEL
from tests.e2e.limited_server import limited_server
from tests.sse_support import events_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxy(database_url: str) -> Iterator[PgRoundTripProxy]:
    with PgRoundTripProxy(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def counted_server(
    proxy: PgRoundTripProxy, fake_openrouter_server: FakeOpenRouter
) -> Iterator[LocalServerProcess]:
    env = {**GENEROUS_RATE_LIMITS, "ONEAI_REPLY_PERSISTENCE": "false"}
    with limited_server("round-trips", proxy.url, fake_openrouter_server, env) as server:
        yield server


def stream_turn(http: httpx.Client, user: AppUser, body: dict[str, Any]) -> tuple[int, str]:
    with http.stream("POST", "/chat/stream", json=body, headers=user.headers) as response:
        return response.status_code, response.read().decode()


def conversation_of(body: str) -> str:
    for event in events_of(body):
        if isinstance(event, dict) and event["type"] == "data-conversation":
            return str(event["data"]["id"])
    raise AssertionError(f"no conversation part in {body!r}")


def test_a_chat_turn_prepares_in_one_round_trip_and_finishes_in_one(
    counted_server: LocalServerProcess, proxy: PgRoundTripProxy, openrouter: FakeOpenRouter, database_url: str
) -> None:
    user = create_user(database_url)
    openrouter.script(Reply(chunks=["A title"]), model=TITLE_MODEL)
    openrouter.script(Reply(chunks=["first ", "reply"]), Reply(chunks=["second ", "reply"]), model=CHAT_MODEL)
    with httpx.Client(base_url=counted_server.base_url, timeout=30) as http:
        # GIVEN a user the server has seen, and a conversation with one exchange (its title written)
        assert http.get("/conversations", headers=user.headers).status_code == 200
        status, body = stream_turn(http, user, {"model": CHAT_MODEL, "content": "Hello"})
        assert status == 200, body
        conversation_id = conversation_of(body)
        proxy.wait_quiet()  # the new user's welcome email is sent in the background (`make dev`'s bus)
        # WHEN the user sends the next message
        started = time.monotonic()
        status, body = stream_turn(
            http, user, {"model": CHAT_MODEL, "content": "And then?", "conversation_id": conversation_id}
        )
        ended = time.monotonic()
    assert status == 200, body
    assert "second " in body and '"type":"finish"' in body.replace(" ", "")
    upstream = [r for r in openrouter.chat_requests if r.received_at >= started]
    assert len(upstream) == 1
    asked_at = upstream[0].received_at
    # THEN one round trip happened before the model was asked (scope, user and rate checks, tier and
    # model, conversation, reserve, the user's message and the history), and one after it (the reply,
    # its usage record and the quota shown in the usage part)
    assert proxy.round_trips_between(started, asked_at) == 1, proxy.queries_between(started, asked_at)
    assert proxy.round_trips_between(asked_at, ended) == 1, proxy.queries_between(asked_at, ended)
    # AND both are really written: the conversation holds the four messages, the usage is recorded
    with httpx.Client(base_url=counted_server.base_url, timeout=30) as http:
        saved = http.get(f"/conversations/{conversation_id}", headers=user.headers).json()["messages"]
    assert [(m["role"], m["content"]) for m in saved] == [
        ("user", "Hello"),
        ("assistant", "first reply"),
        ("user", "And then?"),
        ("assistant", "second reply"),
    ]


def test_a_refused_turn_also_costs_one_round_trip_and_writes_nothing(
    counted_server: LocalServerProcess, proxy: PgRoundTripProxy, openrouter: FakeOpenRouter, database_url: str
) -> None:
    user = create_user(database_url)
    with httpx.Client(base_url=counted_server.base_url, timeout=30) as http:
        # GIVEN a user the server has seen (its first request also announces the new user)
        assert http.get("/conversations", headers=user.headers).status_code == 200
        proxy.wait_quiet()  # the new user's welcome email is sent in the background (`make dev`'s bus)
        # WHEN the user names a conversation that is not theirs (it does not exist for them)
        started = time.monotonic()
        response = http.post(
            "/chat/stream",
            json={"model": CHAT_MODEL, "content": "Hi", "conversation_id": "5b0c4a4e-0d7e-4d8f-9a51-3f1f0e8f4d11"},
            headers=user.headers,
        )
        ended = time.monotonic()
        # THEN it is the usual 404, the model was never asked, and the refusal took the one round trip
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert not [r for r in openrouter.chat_requests if r.received_at >= started]
        assert proxy.round_trips_between(started, ended) == 1, "\n".join(proxy.queries_between(started, ended))
        listed = http.get("/conversations", headers=user.headers).json()["items"]
    assert listed == []


def test_a_chatbot_turn_adds_one_round_trip_for_its_search(
    counted_server: LocalServerProcess, proxy: PgRoundTripProxy, openrouter: FakeOpenRouter, database_url: str
) -> None:
    from tests.e2e.test_chatbot_chat_http import QUESTION, chatbot, knowledge_base, personal_workspace

    user = create_user(database_url)
    workspace = personal_workspace(database_url, user)
    refunds, shipping = knowledge_base(database_url, workspace)
    bot = chatbot(database_url, workspace, [refunds, shipping])
    openrouter.script(Reply(chunks=["A title"]), model=TITLE_MODEL)
    openrouter.script(Reply(chunks=["first"]), Reply(chunks=["14 days"]), model=CHAT_MODEL)
    with httpx.Client(base_url=counted_server.base_url, timeout=30) as http:
        # GIVEN the user's conversation with the chatbot, one exchange in
        status, body = stream_turn(http, user, {"chatbot_id": str(bot), "content": "Hello"})
        assert status == 200, body
        conversation_id = conversation_of(body)
        proxy.wait_quiet()
        # WHEN the user asks the next question
        started = time.monotonic()
        follow_up = {"conversation_id": conversation_id, "chatbot_id": str(bot), "content": QUESTION}
        status, body = stream_turn(http, user, follow_up)
        ended = time.monotonic()
    assert status == 200, body
    assert '"type":"source-document"' in body.replace(" ", "")
    [embedded] = [r for r in openrouter.embeddings_requests if r.received_at >= started]
    [asked] = [r for r in openrouter.chat_requests if r.received_at >= started]
    # THEN the prepare is one round trip (before the query is embedded), the search one more (after the
    # embedding, before the model is asked), and the finish one
    assert proxy.round_trips_between(started, embedded.received_at) == 1, proxy.queries_between(
        started, embedded.received_at
    )
    assert proxy.round_trips_between(embedded.received_at, asked.received_at) == 1, proxy.queries_between(
        embedded.received_at, asked.received_at
    )
    assert proxy.round_trips_between(asked.received_at, ended) == 1, proxy.queries_between(
        asked.received_at, ended
    )
