"""The widget's script and public routes over HTTP, as a page on another site calls them (issue 27)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from local.events import DEV_WIDGET_SESSION_SECRET
from local.fake_openrouter import FakeOpenRouter, Reply, Status
from oneai.analytics import rollup
from oneai.config import Settings, get_settings
from oneai.db.connection import Database
from oneai.knowledge.offline_embedding import offline_embeddings
from oneai.widget import tokens
from tests.conftest import REPO_ROOT
from tests.widget_support import (
    KNOWLEDGE_MODEL,
    QUESTION,
    WidgetChatbot,
    create_chatbot,
    knowledge_chatbot,
    new_visitor_id,
    owner_headers,
    seed_conversation,
    set_chatbot,
    suspend_workspace,
)

USAGE = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "cost": 0.0002}
SHOP = "https://shop.example"
OTHER = "https://evil.example"
STYLE = {
    "title": "Acme help",
    "greeting": "Hi! Ask me anything.",
    "color": "#16a34a",
    "position": "bottom-left",
    "avatar_url": "https://cdn.example/bot.png",
    "suggested_questions": ["Where is my order?", "How do returns work?"],
}


def session_for(
    client: httpx.Client, public_id: str, visitor_id: str, origin: str = SHOP, **extra: object
) -> httpx.Response:
    body = {"visitor_id": visitor_id, "page_url": f"{origin}/help", **extra}
    return client.post(f"/public/chatbots/{public_id}/sessions", json=body, headers={"origin": origin})


def test_settings_of_an_active_chatbot_are_public_and_answer_the_pages_origin(
    client: httpx.Client, database_url: str
) -> None:
    chatbot = create_chatbot(database_url, widget={**STYLE, "allowed_origins": [SHOP]})
    answer = client.get(f"/public/chatbots/{chatbot.public_id}", headers={"origin": SHOP})
    assert answer.status_code == 200
    assert answer.json() == {"public_id": chatbot.public_id, **STYLE}  # never allowed_origins
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["vary"] == "Origin"
    # Settings a script could not use as they are come out as defaults.
    set_chatbot(
        database_url, chatbot, widget={"color": "red;background:url(x)", "avatar_url": "javascript:alert(1)"}
    )
    odd = client.get(f"/public/chatbots/{chatbot.public_id}").json()
    assert odd["color"] == "#2563eb" and odd["avatar_url"] is None and odd["title"] == "Help desk"


def test_unknown_draft_disabled_and_suspended_chatbots(client: httpx.Client, database_url: str) -> None:
    assert client.get("/public/chatbots/cb_00000000000000000000000000000000").status_code == 404
    assert client.get("/public/chatbots/not-a-public-id").status_code == 404
    draft = create_chatbot(database_url, status="draft")
    assert client.get(f"/public/chatbots/{draft.public_id}").status_code == 404
    disabled = create_chatbot(database_url, status="disabled")
    refused = client.get(f"/public/chatbots/{disabled.public_id}", headers={"origin": SHOP})
    assert (
        refused.status_code == 403
        and refused.json()["error"]["message"] == "The assistant is unavailable right now"
    )
    assert refused.headers["access-control-allow-origin"] == SHOP  # the widget can read it and say so
    suspended = create_chatbot(database_url)
    suspend_workspace(database_url, suspended)
    assert client.get(f"/public/chatbots/{suspended.public_id}").status_code == 403
    assert session_for(client, suspended.public_id, new_visitor_id()).status_code == 403


def test_allowed_origins_hold_on_every_route_and_on_the_preflight(client: httpx.Client, database_url: str) -> None:
    chatbot = create_chatbot(database_url, widget={"allowed_origins": [SHOP, "https://*.acme.example"]})
    base = f"/public/chatbots/{chatbot.public_id}"
    preflight_headers = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}

    allowed = client.options(f"{base}/sessions", headers={"origin": SHOP, **preflight_headers})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert client.get(base, headers={"origin": "https://help.acme.example"}).status_code == 200

    for origin in (OTHER, "https://acme.example", "http://shop.example"):
        refused = client.options(f"{base}/sessions", headers={"origin": origin, **preflight_headers})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        settings = client.get(base, headers={"origin": origin})
        assert settings.status_code == 403 and "access-control-allow-origin" not in settings.headers
        assert session_for(client, chatbot.public_id, new_visitor_id(), origin=origin).status_code == 403
    assert client.get(base).status_code == 403  # a list of origins needs an Origin


def test_a_session_token_works_only_from_its_origin_unforged_and_unexpired(
    client: httpx.Client, database_url: str
) -> None:
    chatbot = create_chatbot(database_url)  # any origin
    visitor = new_visitor_id()
    opened = session_for(client, chatbot.public_id, visitor)
    assert opened.status_code == 200
    answer = opened.json()
    assert answer["conversation_id"] is None and answer["expires_at"].endswith("Z")
    conversation = seed_conversation(database_url, chatbot, visitor, [("user", "Hello", None)])
    url = f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/messages"
    token = answer["session_token"]

    def read(bearer: str, origin: str = SHOP) -> httpx.Response:
        return client.get(url, headers={"authorization": f"Bearer {bearer}", "origin": origin})

    assert read(token).status_code == 200
    assert read(token, origin=OTHER).status_code == 401  # another page's origin
    assert client.get(url, headers={"authorization": f"Bearer {token}"}).status_code == 401  # no origin at all
    payload, signature = token.split(".")[1:]
    assert read(f"wst1.{payload}.{signature[:-2]}AA").status_code == 401  # forged
    assert read("not-a-token").status_code == 401
    assert client.get(url, headers={"origin": SHOP}).status_code == 401  # none
    settings = Settings(widget_session_secret=DEV_WIDGET_SESSION_SECRET)  # the key make dev signs with
    session = tokens.verify(settings, f"Bearer {token}", chatbot_id=chatbot.id, origin=SHOP)
    expired = tokens.issue(settings, dataclasses.replace(session, expires_at=int(time.time()) - 1))
    assert read(expired).status_code == 401
    other_bot = create_chatbot(database_url)
    other_url = f"/public/chatbots/{other_bot.public_id}/conversations/{conversation}/messages"
    assert client.get(other_url, headers={"authorization": f"Bearer {token}", "origin": SHOP}).status_code == 401


def test_the_conversation_resumes_for_its_visitor_only(client: httpx.Client, database_url: str) -> None:
    chatbot = create_chatbot(database_url)
    visitor, stranger = new_visitor_id(), new_visitor_id()
    assert session_for(client, chatbot.public_id, visitor).status_code == 200
    sources = [
        {
            "chunk_id": "c1",
            "document_id": "d1",
            "filename": "returns.pdf",
            "page": 2,
            "chunk_index": 4,
            "score": 0.82,
        }
    ]
    conversation = seed_conversation(
        database_url,
        chatbot,
        visitor,
        [("user", "How do returns work?", None), ("assistant", "Within 30 days.", sources)],
    )
    resumed = session_for(client, chatbot.public_id, visitor, conversation_id=str(conversation)).json()
    assert resumed["conversation_id"] == str(conversation)
    token = resumed["session_token"]
    url = f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/messages"
    thread = client.get(url, headers={"authorization": f"Bearer {token}", "origin": SHOP}).json()
    assert [(m["role"], m["content"]) for m in thread["messages"]] == [
        ("user", "How do returns work?"),
        ("assistant", "Within 30 days."),
    ]
    assert thread["messages"][1]["sources"] == sources and thread["rating"] is None

    # Another visitor of the same chatbot: not resumed, not readable (404), not ratable.
    theirs = session_for(client, chatbot.public_id, stranger, conversation_id=str(conversation)).json()
    assert theirs["conversation_id"] is None
    headers = {"authorization": f"Bearer {theirs['session_token']}", "origin": SHOP}
    assert client.get(url, headers=headers).status_code == 404
    rating_url = f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/rating"
    assert client.post(rating_url, json={"score": 1}, headers=headers).status_code == 404
    assert (
        client.get(
            f"/public/chatbots/{chatbot.public_id}/conversations/{uuid.uuid4()}/messages", headers=headers
        ).status_code
        == 404
    )


def test_the_visitor_rates_their_conversation(client: httpx.Client, database_url: str) -> None:
    chatbot = create_chatbot(database_url)
    visitor = new_visitor_id()
    token = session_for(client, chatbot.public_id, visitor).json()["session_token"]
    conversation = seed_conversation(
        database_url, chatbot, visitor, [("user", "Hi", None), ("assistant", "Hello!", None)]
    )
    url = f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/rating"
    headers = {"authorization": f"Bearer {token}", "origin": SHOP}
    assert client.post(url, json={"score": 6}, headers=headers).status_code == 422
    assert client.post(url, json={"score": 0}, headers=headers).status_code == 422
    rated = client.post(url, json={"score": 4, "comment": "Helpful"}, headers=headers)
    assert rated.status_code == 200 and rated.json()["score"] == 4 and rated.json()["rated_at"].endswith("Z")
    assert client.post(url, json={"score": 5}, headers=headers).json()["score"] == 5  # the last one counts
    messages = client.get(url.replace("/rating", "/messages"), headers=headers).json()
    assert messages["rating"] == 5


def test_what_is_kept_of_a_visitor(client: httpx.Client, database_url: str) -> None:
    chatbot = create_chatbot(database_url)
    visitor = new_visitor_id()
    answer = client.post(
        f"/public/chatbots/{chatbot.public_id}/sessions",
        json={
            "visitor_id": visitor,
            "page_url": "https://shop.example/p/1",
            "referrer": "https://search.example/",
            "locale": "pt-PT",
        },
        headers={"origin": SHOP, "user-agent": "WidgetTest/1.0"},
    )
    assert answer.status_code == 200
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select page_url, referrer, locale, user_agent, source_hash from public.widget_visitors"
            " where chatbot_id = %s and visitor_id = %s",
            (chatbot.id, visitor),
        ).fetchone()
    assert row[:4] == ("https://shop.example/p/1", "https://search.example/", "pt-PT", "WidgetTest/1.0")
    assert len(row[4]) == 32 and b"127.0.0.1" not in row[4]  # a keyed hash, never the address
    with psycopg.connect(database_url) as conn:  # the rate limiter's key for the same address
        keys = {
            r[0]
            for r in conn.execute(
                "select source_hash from oneai_private.source_rate_limits where bucket = 'widget'"
            )
        }
    assert row[4] in keys
    bad = session_for(client, chatbot.public_id, "short")
    assert bad.status_code == 422


def test_widget_js_is_served_cacheable_and_versioned(client: httpx.Client) -> None:
    script = client.get("/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=300, stale-while-revalidate=86400"
    etag = script.headers["etag"]
    version = etag.strip('"')
    assert b"data-chatbot" in script.content
    pinned = client.get(f"/widget.js?v={version}")
    assert (
        pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
        and pinned.content == script.content
    )
    assert client.get("/widget.js?v=0000").headers["cache-control"].startswith("public, max-age=300")
    again = client.get("/widget.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


@pytest.fixture
def client(local_server) -> httpx.Client:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


# ------------------------------------------------------------------------------------------------
# The public chat (part 2): POST /public/chatbots/{public_id}/chat
# ------------------------------------------------------------------------------------------------
def visitor_session(client: httpx.Client, chatbot: WidgetChatbot, origin: str = SHOP) -> dict[str, str]:
    """A new visitor's session: the headers its page sends to the public chat."""
    token = session_for(client, chatbot.public_id, new_visitor_id(), origin=origin).json()["session_token"]
    return {"authorization": f"Bearer {token}", "origin": origin}


def stream_parts(text: str) -> list[dict[str, object]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: {")]


def test_the_public_chat_streams_the_chatbots_answer_with_its_source_as_chat_stream_does(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a chatbot on a refunds policy that allows the shop's pages, and a visitor of the shop
    chatbot = knowledge_chatbot(database_url, widget={"allowed_origins": [SHOP]})
    headers = visitor_session(client, chatbot)
    openrouter.script(Reply(chunks=["Within 14 days", " (refunds.pdf)."], usage=USAGE), model=KNOWLEDGE_MODEL)
    # WHEN the visitor asks (the native body)
    url = f"/public/chatbots/{chatbot.public_id}/chat"
    with client.stream("POST", url, json={"content": QUESTION}, headers=headers) as response:
        # THEN the reply streams as /chat/stream's, readable by the page
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert response.headers["access-control-allow-origin"] == SHOP
        assert "x-vercel-ai-ui-message-stream" in response.headers["access-control-expose-headers"]
        body = response.read().decode()
    parts = stream_parts(body)
    types = [p["type"] for p in parts]
    assert types[0] == "start" and types[-1] == "finish" and body.rstrip().endswith("data: [DONE]")
    assert types.index("source-document") < types.index("text-start")
    source = next(p for p in parts if p["type"] == "source-document")
    assert source["title"] == "refunds.pdf p. 2"
    assert "".join(str(p["delta"]) for p in parts if p["type"] == "text-delta") == "Within 14 days (refunds.pdf)."
    conversation = next(p for p in parts if p["type"] == "data-conversation")["data"]["id"]  # type: ignore[index]
    # AND after a reload the visitor's thread has both messages, the reply with its source
    thread = client.get(
        f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/messages", headers=headers
    )
    messages = thread.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", QUESTION),
        ("assistant", "Within 14 days (refunds.pdf)."),
    ]
    assert [s["chunk_id"] for s in messages[1]["sources"]] == [source["sourceId"]]
    # AND the owner's inbox lists the conversation with its two messages
    inbox = client.get(
        f"/chatbots/{chatbot.id}/conversations", headers=owner_headers(database_url, chatbot)
    ).json()
    assert [(item["id"], item["messages"]) for item in inbox["items"]] == [(conversation, 2)]
    # AND the AI SDK body continues the same conversation (its chat id is the conversation's)
    openrouter.script(Reply(chunks=["Yes."], usage=USAGE), model=KNOWLEDGE_MODEL)
    ai_sdk = {
        "id": conversation,
        "messages": [{"id": "m2", "role": "user", "parts": [{"type": "text", "text": "To the card?"}]}],
        "trigger": "submit-message",
    }
    again = client.post(url, json=ai_sdk, headers=headers)
    assert again.status_code == 200
    assert (
        next(p for p in stream_parts(again.text) if p["type"] == "data-conversation")["data"]["id"] == conversation
    )  # type: ignore[index]


def test_no_credits_is_a_402_the_widget_can_read_and_nothing_is_kept(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    chatbot = knowledge_chatbot(database_url, credits=None)
    headers = visitor_session(client, chatbot)
    refused = client.post(
        f"/public/chatbots/{chatbot.public_id}/chat", json={"content": QUESTION}, headers=headers
    )
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert refused.headers["access-control-allow-origin"] == SHOP  # the widget reads it: "unavailable"
    # the workspace's balance and a reply's cost are the workspace's business, not a visitor's
    assert refused.json()["error"]["details"] == {}, refused.text
    assert "balance" not in refused.text and "credits" not in refused.json()["error"]["message"].lower()
    with psycopg.connect(database_url) as conn:
        kept = conn.execute(
            "select count(*) from public.visitor_conversations where chatbot_id = %s", (chatbot.id,)
        ).fetchone()
    assert kept == (0,)
    assert openrouter.chat_requests == []  # no model was asked


def test_a_refused_workspace_key_is_a_424_that_names_nothing_of_the_key_to_the_visitor(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a chatbot whose workspace has no credits but its own OpenRouter key, which OpenRouter refuses
    chatbot = knowledge_chatbot(database_url, credits=None)
    owner = owner_headers(database_url, chatbot)
    added = client.post(
        f"/workspaces/{chatbot.workspace_id}/provider-keys",
        json={"provider": "openrouter", "name": "Acme production key", "key": "sk-or-v1-widget-e2e-9d2c"},
        headers=owner,
    )
    assert added.status_code == 201, added.text
    openrouter.script(Status(401, "invalid key"), model=KNOWLEDGE_MODEL)
    # WHEN a visitor asks
    refused = client.post(
        f"/public/chatbots/{chatbot.public_id}/chat",
        json={"content": QUESTION},
        headers=visitor_session(client, chatbot),
    )
    # THEN 424, which the widget shows as "unavailable", and nothing of the key: not its name, id or provider
    assert refused.status_code == 424 and refused.json()["error"]["code"] == "PROVIDER_KEY_REFUSED", refused.text
    assert refused.json()["error"]["details"] == {}, refused.text
    for private in ("Acme production key", added.json()["id"], "openrouter", "sk-or-v1"):
        assert private not in refused.text
    # AND the key was still marked invalid for its owner to see
    shown = client.get(f"/provider-keys/{added.json()['id']}", headers=owner)
    assert shown.json()["status"] == "invalid"


def test_a_workspace_key_without_funds_is_the_same_plain_424_to_the_visitor(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a chatbot whose workspace's own OpenRouter key has no credits left at OpenRouter (its 402)
    chatbot = knowledge_chatbot(database_url, credits=None)
    owner = owner_headers(database_url, chatbot)
    added = client.post(
        f"/workspaces/{chatbot.workspace_id}/provider-keys",
        json={"provider": "openrouter", "name": "Acme production key", "key": "sk-or-v1-widget-e2e-5e1f"},
        headers=owner,
    )
    assert added.status_code == 201, added.text
    no_credits = Status(402, "Insufficient credits. Add more using https://openrouter.ai/credits")
    openrouter.script(no_credits, no_credits, model=KNOWLEDGE_MODEL)
    # WHEN a visitor asks
    refused = client.post(
        f"/public/chatbots/{chatbot.public_id}/chat",
        json={"content": QUESTION},
        headers=visitor_session(client, chatbot),
    )
    # THEN the widget's plain 424 ("unavailable"): nothing of the key, nor that its account has no funds
    assert refused.status_code == 424 and refused.json()["error"]["code"] == "PROVIDER_KEY_REFUSED", refused.text
    assert refused.json()["error"]["details"] == {}, refused.text
    for private in ("Acme production key", added.json()["id"], "openrouter", "sk-or-v1", "funds", "credits"):
        assert private not in refused.text
    # AND the key stays active for its owner (it is valid; its account needs topping up)
    shown = client.get(f"/provider-keys/{added.json()['id']}", headers=owner)
    assert shown.json()["status"] == "active"


def test_the_chatbots_messages_of_the_day_used_up_is_a_429_with_retry_after(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    chatbot = knowledge_chatbot(database_url)
    headers = visitor_session(client, chatbot)
    with psycopg.connect(database_url, autocommit=True) as conn:  # the free plan's 100 of today, used
        conn.execute(
            "insert into public.widget_message_counts (chatbot_id, day, workspace_id, used)"
            " values (%s, (now() at time zone 'utc')::date, %s, 100)",
            (chatbot.id, chatbot.workspace_id),
        )
    refused = client.post(
        f"/public/chatbots/{chatbot.public_id}/chat", json={"content": QUESTION}, headers=headers
    )
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.json()["error"]["details"]["bucket"] == "widget_chatbot_day"
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert refused.headers["access-control-allow-origin"] == SHOP
    assert "retry-after" in refused.headers["access-control-expose-headers"]
    assert openrouter.chat_requests == []


def test_the_public_chat_refuses_other_origins_other_sessions_and_unavailable_chatbots(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    chatbot = knowledge_chatbot(database_url, widget={"allowed_origins": [SHOP]})
    url = f"/public/chatbots/{chatbot.public_id}/chat"
    headers = visitor_session(client, chatbot)
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    assert client.options(url, headers={"origin": SHOP, **preflight}).status_code == 204
    refused = client.options(url, headers={"origin": OTHER, **preflight})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    # The shop's token presented from another page: the origin is refused before the token is read
    other = client.post(url, json={"content": QUESTION}, headers={**headers, "origin": OTHER})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    # No token, a forged one, another chatbot's: 401
    assert client.post(url, json={"content": QUESTION}, headers={"origin": SHOP}).status_code == 401
    forged = {**headers, "authorization": headers["authorization"][:-3] + "AAA"}
    assert client.post(url, json={"content": QUESTION}, headers=forged).status_code == 401
    elsewhere = knowledge_chatbot(database_url)
    assert (
        client.post(
            f"/public/chatbots/{elsewhere.public_id}/chat", json={"content": "Hi"}, headers=headers
        ).status_code
        == 401
    )
    # A body the widget never sends: 422; an edit or a regeneration of the AI SDK: 422
    assert client.post(url, json={"content": "  "}, headers=headers).status_code == 422
    assert client.post(url, json={"content": "Hi", "model": "openai/gpt-4o"}, headers=headers).status_code == 422
    regenerate = {"messages": [{"id": "m", "role": "user", "parts": []}], "trigger": "regenerate-message"}
    assert client.post(url, json=regenerate, headers=headers).status_code == 422
    # A disabled chatbot: 403 "unavailable", readable by the page
    set_chatbot(database_url, chatbot, status="disabled")
    unavailable = client.post(url, json={"content": QUESTION}, headers=headers)
    assert unavailable.status_code == 403
    assert unavailable.json()["error"]["message"] == "The assistant is unavailable right now"
    assert unavailable.headers["access-control-allow-origin"] == SHOP
    assert openrouter.chat_requests == []


def test_the_ai_sdk_client_reads_the_public_chat_and_its_chat_id_keeps_the_conversation(
    local_server: LocalServerProcess, client: httpx.Client, database_url: str, openrouter: FakeOpenRouter
) -> None:
    """The real Vercel AI SDK client (tests/node/read_chat_stream.mjs: `DefaultChatTransport`,
    `readUIMessageStream`, every chunk parsed by the SDK's own schema) against the public chat, as a site
    with its own chat UI would call it: a session opened by a server (no Origin), the SDK's own chat id."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the AI SDK client check needs Node.js")
    chatbot = knowledge_chatbot(database_url)  # any origin
    token = client.post(
        f"/public/chatbots/{chatbot.public_id}/sessions",
        json={"visitor_id": new_visitor_id(), "page_url": "https://shop.example/"},
    ).json()["session_token"]
    api = f"{local_server.base_url}/public/chatbots/{chatbot.public_id}/chat"

    def read(text: str, chat_id: str) -> dict[str, Any]:
        completed = subprocess.run(
            [
                node,
                str(REPO_ROOT / "tests" / "node" / "read_chat_stream.mjs"),
                local_server.base_url,
                token,
                "-",
                text,
                chat_id,
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "ONEAI_CHAT_API": api},
        )
        assert completed.returncode == 0, completed.stderr[:4000]
        result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return result

    openrouter.script(
        Reply(chunks=["Within 14 days."], usage=USAGE), Reply(chunks=["Yes."], usage=USAGE), model=KNOWLEDGE_MODEL
    )
    first = read(QUESTION, "sdk-chat-Xk3vQ9mZp2LwT7rB")
    assert (first["text"], first["error"]) == ("Within 14 days.", None)
    assert first["sourceParts"] and first["sourceParts"][0]["title"] == "refunds.pdf p. 2"
    assert first["partTypes"].index("source-document") < first["partTypes"].index("text")
    second = read("To the card?", "sdk-chat-Xk3vQ9mZp2LwT7rB")
    assert second["text"] == "Yes."
    conversation = {r["dataParts"][0]["data"]["id"] for r in (first, second)}  # the data-conversation part
    assert len(conversation) == 1
    with psycopg.connect(database_url) as conn:
        count = conn.execute(
            "select message_count from public.visitor_conversations where id = %s", (conversation.pop(),)
        ).fetchone()
    assert count == (4,)


def test_a_visitors_widget_conversation_is_triaged_in_the_inbox_exported_and_counted_in_the_analytics(
    client: httpx.Client, database_url: str, openrouter: FakeOpenRouter, db: Database
) -> None:
    # GIVEN a visitor who asked the chatbot on the shop's page and got its answer
    chatbot = knowledge_chatbot(database_url, widget={"allowed_origins": [SHOP]})
    headers = visitor_session(client, chatbot)
    openrouter.script(Reply(chunks=["Within 14 days."], usage=USAGE), model=KNOWLEDGE_MODEL)
    asked = client.post(f"/public/chatbots/{chatbot.public_id}/chat", json={"content": QUESTION}, headers=headers)
    assert asked.status_code == 200, asked.text
    conversation = next(p for p in stream_parts(asked.text) if p["type"] == "data-conversation")["data"]["id"]  # type: ignore[index]
    owner = owner_headers(database_url, chatbot)
    base = f"/chatbots/{chatbot.id}/conversations"

    # WHEN the owner searches the inbox for a word of the question, THEN the conversation is found there
    found = client.get(base, params={"q": "refunds"}, headers=owner).json()["items"]
    assert [(i["id"], i["messages"], i["visitor"]["page_url"]) for i in found] == [
        (conversation, 2, f"{SHOP}/help")
    ]
    assert "refunds" in found[0]["match"]["snippet"].lower()
    assert client.get(base, params={"q": "parcel"}, headers=owner).json()["items"] == []
    # AND it is tagged and resolved
    patched = client.patch(
        f"/chatbot-conversations/{conversation}", json={"tags": ["refund"], "status": "resolved"}, headers=owner
    )
    assert patched.status_code == 200 and (patched.json()["tags"], patched.json()["status"]) == (
        ["refund"],
        "resolved",
    )
    # AND exported in the three formats, the visitor's question and the chatbot's answer in each
    exported = {
        fmt: client.get(f"{base}/export", params={"format": fmt}, headers=owner) for fmt in ("json", "csv", "md")
    }
    assert all(answer.status_code == 200 for answer in exported.values())
    [item] = exported["json"].json()["items"]
    assert [(m["role"], m["content"]) for m in item["messages"]] == [
        ("user", QUESTION),
        ("assistant", "Within 14 days."),
    ]
    assert item["tags"] == ["refund"] and item["status"] == "resolved"
    rows = list(csv.DictReader(io.StringIO(exported["csv"].text)))
    assert [(r["role"], r["content"], r["status"]) for r in rows] == [
        ("user", QUESTION, "resolved"),
        ("assistant", "Within 14 days.", "resolved"),
    ]
    assert QUESTION in exported["md"].text and "Within 14 days." in exported["md"].text

    # AND once the analytics job has run, the workspace's analytics count it, with the reply's timings
    rollup.run(db, get_settings(), embed=offline_embeddings)
    while rollup.add_questions(db, get_settings(), offline_embeddings):
        pass
    analytics = client.get(
        f"/workspaces/{chatbot.workspace_id}/analytics", params={"chatbot_id": str(chatbot.id)}, headers=owner
    ).json()
    assert (analytics["messages"], analytics["conversations"]) == (2, 1)
    assert analytics["response_time"]["replies"] == 1
    assert 0 <= analytics["response_time"]["ttft_p50_ms"] <= analytics["response_time"]["p50_ms"]
    assert analytics["top_questions"] == [{"question": QUESTION, "count": 1}]
