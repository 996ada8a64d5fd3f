"""Resumable replies over HTTP (API.md "Resumable replies"): a reply goes on when its client leaves, the
resume address replays it from `start` and follows it live, and a stop request ends it, through the local
server against the fake OpenRouter (real sockets, real SSE, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_openrouter import FakeOpenRouter, Infinite, Reply
from tests.conftest import REPO_ROOT, AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, GENEROUS_RATE_LIMITS, LocalServer
from tests.e2e.limited_server import limited_server
from tests.e2e.test_ai_sdk_client import NODE_CLIENT_DIR, NODE_TIMEOUT_SECONDS, node
from tests.sse_support import aiter_events, events_of, parts_came, read_until

pytestmark = pytest.mark.e2e
WORDS = [f"w{i} " for i in range(30)]
RESUME_SCRIPT = NODE_CLIENT_DIR / "resume_chat_stream.mjs"
__all__ = ["node"]  # the fixture, shared with test_ai_sdk_client.py


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def texts(events: list[Any]) -> str:
    return "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")


def types_of(events: list[Any]) -> list[str]:
    return [e if isinstance(e, str) else e["type"] for e in events]


def saved_reply(database_url: str, conversation_id: str) -> tuple[str, str, str] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select id::text, content, status from public.chat_messages"
            " where conversation_id = %s and role = 'assistant'",
            (conversation_id,),
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def test_a_client_that_leaves_loses_nothing_and_the_resume_address_replays_the_whole_reply(
    local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a reply of 30 words, one every 40 ms
    openrouter.script(Reply(chunks=WORDS, delay=0.04), model=CHAT_MODEL)

    async def scenario() -> tuple[list[Any], httpx.Response, list[Any]]:
        async with httpx.AsyncClient(base_url=local_server.base_url, timeout=30) as http:
            # WHEN the client reads two deltas and goes away
            async with http.stream(
                "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "count"}, headers=user.headers
            ) as response:
                assert response.status_code == 200
                first = await read_until(aiter_events(response), parts_came("text-delta", 2))
            conversation_id = first[1]["data"]["id"]
            # AND a reload asks the resume address
            resumed = await http.get(f"/chat/stream/{conversation_id}/stream", headers=user.headers)
            # AND asks again once the reply is over
            after = await http.get(f"/chat/stream/{conversation_id}/stream", headers=user.headers)
            return first, resumed, [resumed.status_code, after.status_code, conversation_id]

    first, resumed, (resumed_status, after_status, conversation_id) = asyncio.run(scenario())
    # THEN the resumed stream is the whole reply, from `start` to `finish` and `[DONE]`
    assert resumed_status == 200
    assert resumed.headers["content-type"].startswith("text/event-stream")
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    events = events_of(resumed.text)
    types = types_of(events)
    assert types[:3] == ["start", "data-conversation", "text-start"]
    assert types[-2:] == ["finish", "[DONE]"]
    assert types.index("text-end") < types.index("data-usage") < types.index("finish")
    assert events[0]["messageId"] == first[0]["messageId"]
    assert texts(events) == "".join(WORDS)
    # AND the reply was generated to its end and saved complete, with the full text, under the same id
    assert saved_reply(database_url, conversation_id) == (first[0]["messageId"], "".join(WORDS), "complete")
    # AND the upstream was never cut
    stream_request = next(r for r in openrouter.chat_requests if r.body and r.body.get("stream"))
    assert stream_request.disconnected_at is None
    # AND once over, the resume address has nothing to give
    assert after_status == 204
    # AND the transient parts were folded away: no batch is left, the reply's state says complete
    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "select count(*) from public.reply_stream_parts p join public.reply_streams r on r.id = p.reply_id"
            " where r.conversation_id = %s",
            (conversation_id,),
        ).fetchone()
        state = conn.execute(
            "select status from public.reply_streams where conversation_id = %s", (conversation_id,)
        ).fetchone()
    assert left is not None and left[0] == 0
    assert state is not None and state[0] == "complete"


def test_several_readers_follow_one_reply_and_all_get_the_same_message(
    local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Reply(chunks=WORDS, delay=0.04), model=CHAT_MODEL)

    async def scenario() -> list[list[Any]]:
        async with (
            httpx.AsyncClient(base_url=local_server.base_url, timeout=30) as http,
            http.stream(
                "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "count"}, headers=user.headers
            ) as response,
        ):
            assert response.status_code == 200
            events = aiter_events(response)
            received = await read_until(events, parts_came("text-delta", 3))
            conversation_id = received[1]["data"]["id"]

            async def resume() -> list[Any]:
                answer = await http.get(f"/chat/stream/{conversation_id}/stream", headers=user.headers)
                assert answer.status_code == 200
                return events_of(answer.text)

            # WHEN three more readers join while the first keeps reading
            async def keep_reading() -> list[Any]:
                return received + [event async for event in events]

            return list(await asyncio.gather(keep_reading(), resume(), resume(), resume()))

    streams = asyncio.run(scenario())
    # THEN every reader got the same message: same id, same text, same ending
    for events in streams:
        assert events[0]["type"] == "start" and events[0]["messageId"] == streams[0][0]["messageId"]
        assert texts(events) == "".join(WORDS)
        assert types_of(events)[-2:] == ["finish", "[DONE]"]
        usage = [e["data"] for e in events if isinstance(e, dict) and e["type"] == "data-usage"]
        assert usage == [e["data"] for e in streams[0] if isinstance(e, dict) and e["type"] == "data-usage"]


def test_stop_ends_every_stream_with_finish_and_keeps_the_text_so_far(
    local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a model that would never stop by itself
    openrouter.script(Infinite(chunk="more ", interval=0.05), model=CHAT_MODEL)

    async def scenario() -> tuple[list[Any], list[Any], float, int]:
        async with (
            httpx.AsyncClient(base_url=local_server.base_url, timeout=30) as http,
            http.stream(
                "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "go"}, headers=user.headers
            ) as response,
        ):
            assert response.status_code == 200
            events = aiter_events(response)
            received = await read_until(events, parts_came("text-delta", 3))
            conversation_id = received[1]["data"]["id"]
            follower = asyncio.create_task(
                http.get(f"/chat/stream/{conversation_id}/stream", headers=user.headers)
            )
            await asyncio.sleep(0.5)
            # WHEN the user presses stop (a separate request)
            stopped_at = time.monotonic()
            stop = await http.post(f"/chat/stream/{conversation_id}/stop", headers=user.headers)
            received += [event async for event in events]
            resumed = await follower
            return received, events_of(resumed.text), stopped_at, stop.status_code

    original, followed, stopped_at, stop_status = asyncio.run(scenario())
    assert stop_status == 204
    # THEN the original stream and the follower's both end cleanly with `finish`
    for events in (original, followed):
        assert types_of(events)[-2:] == ["finish", "[DONE]"]
        assert "error" not in types_of(events)
    # AND the upstream saw its connection closed within a second of the stop
    stream_request = next(r for r in openrouter.chat_requests if r.body and r.body.get("stream"))
    assert stream_request.disconnected_at is not None
    assert stream_request.disconnected_at - stopped_at < 1.0
    # AND the message is `incomplete` with exactly the text the streams showed
    conversation_id = original[1]["data"]["id"]
    saved = saved_reply(database_url, conversation_id)
    assert saved is not None and saved[2] == "incomplete"
    assert saved[1] == texts(original) == texts(followed)
    assert saved[1].startswith("more more more")


def test_resume_and_stop_answer_only_for_the_callers_own_conversations(
    local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    openrouter.script(Reply(chunks=WORDS, delay=0.05), model=CHAT_MODEL)
    stranger = create_user(database_url)

    async def scenario() -> dict[str, int]:
        async with httpx.AsyncClient(base_url=local_server.base_url, timeout=30) as http:
            async with http.stream(
                "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "count"}, headers=user.headers
            ) as response:
                assert response.status_code == 200
                events = aiter_events(response)
                conversation_id = (await read_until(events, parts_came("text-delta", 2)))[1]["data"]["id"]
                # WHEN someone else asks for the reply being generated, or to stop it
                answers = {
                    "stranger resume": (
                        await http.get(f"/chat/stream/{conversation_id}/stream", headers=stranger.headers)
                    ).status_code,
                    "stranger stop": (
                        await http.post(f"/chat/stream/{conversation_id}/stop", headers=stranger.headers)
                    ).status_code,
                    "unknown": (
                        await http.get(f"/chat/stream/{uuid.uuid4()}/stream", headers=user.headers)
                    ).status_code,
                    "anonymous": (await http.get(f"/chat/stream/{conversation_id}/stream")).status_code,
                }
                async for _ in events:
                    pass
            return answers

    answers = asyncio.run(scenario())
    # THEN it is not found (not forbidden), and nothing stopped: the owner's reply finished complete
    assert answers == {"stranger resume": 404, "stranger stop": 404, "unknown": 404, "anonymous": 401}
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select m.status from public.chat_messages m join public.conversations c on c.id = m.conversation_id"
            " where c.user_id = %s and m.role = 'assistant'",
            (user.id,),
        ).fetchone()
    assert row is not None and row[0] == "complete"


def test_the_ai_sdk_resume_stream_rebuilds_the_same_message_as_the_original_stream(
    node: str, local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a reply slow enough to reload in the middle of it
    openrouter.script(Reply(chunks=WORDS, delay=0.04), model=CHAT_MODEL)
    # WHEN one AI SDK Chat sends and reads, and a fresh Chat with the same id calls resumeStream() meanwhile
    completed = subprocess.run(
        [node, str(RESUME_SCRIPT), local_server.base_url, user.token, CHAT_MODEL, "count for me"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[:4000]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    # THEN the resumed Chat rebuilt the same message: id, whole text, data parts (conversation, usage)
    original, resumed = result["original"], result["resumed"]
    assert original["text"] == "".join(WORDS)
    assert resumed == original
    assert {p["type"] for p in resumed["dataParts"]} == {"data-conversation", "data-usage"}
    # AND resuming after the end finds nothing (204): the Chat stays ready, with only the resumed message
    assert result["afterEnd"] == {"status": "ready", "messages": 1}


def test_a_reply_nobody_reads_runs_until_the_time_limit_and_is_saved_incomplete(
    user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a server whose replies may read the model for 1.5 s (in AWS: 280 s of the function's 300 s)
    limits = {**GENEROUS_RATE_LIMITS, "ONEAI_REPLY_TIME_LIMIT": "1.5"}
    openrouter.script(Infinite(chunk="on ", interval=0.05), model=CHAT_MODEL)
    with limited_server("reply-time-limit", database_url, openrouter, limits) as server:

        async def start_and_leave() -> str:
            async with (
                httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
                http.stream(
                    "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "go"}, headers=user.headers
                ) as response,
            ):
                assert response.status_code == 200
                first = await read_until(aiter_events(response), parts_came("text-delta", 2))
                return str(first[1]["data"]["id"])

        # WHEN the client leaves at once and nobody resumes
        conversation_id = asyncio.run(start_and_leave())
        left_at = time.monotonic()
        deadline = left_at + 10
        saved = None
        while time.monotonic() < deadline and saved is None:
            time.sleep(0.05)
            saved = saved_reply(database_url, conversation_id)
        # THEN the reply kept being generated after the client left, until the limit, and was saved incomplete
        assert saved is not None and saved[2] == "incomplete"
        assert saved[1].count("on ") > 10
        stream_request = next(r for r in openrouter.chat_requests if r.body and r.body.get("stream"))
        assert stream_request.disconnected_at is not None and stream_request.disconnected_at - left_at > 0.5
        # AND it is over: the resume address answers 204 once the reply is folded
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            statuses = []
            for _ in range(40):
                statuses.append(
                    http.get(f"/chat/stream/{conversation_id}/stream", headers=user.headers).status_code
                )
                if statuses[-1] == 204:
                    break
                time.sleep(0.05)
        assert statuses[-1] == 204


def test_a_client_that_reloads_right_after_done_finds_nothing_to_resume(
    local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a reply read to its `[DONE]`
    openrouter.script(Reply(chunks=WORDS[:5], delay=0.01), model=CHAT_MODEL)
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        events = events_of(
            http.post("/chat/stream", json={"model": CHAT_MODEL, "content": "count"}, headers=user.headers).text
        )
        assert events[-1] == "[DONE]"
        # WHEN the page reloads at once (the AI SDK asks the resume address on load)
        resumed = http.get(f"/chat/stream/{events[1]['data']['id']}/stream", headers=user.headers)
    # THEN there is nothing being generated any more
    assert resumed.status_code == 204
