"""The conversations API over HTTP through the local server (template routes -> API Gateway events ->
the Lambda handler), as the frontend sees it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from oneai.conversations import service
from oneai.conversations.models import NewMessage
from oneai.db.connection import Database
from tests.conftest import AppUser, create_user, token_for

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def client(local_server: Any) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


def seed_messages(db: Database, user: AppUser, conversation_id: str) -> list[Any]:
    cid = uuid.UUID(conversation_id)
    with db.user_transaction(user.principal) as conn:
        q = service.append_message(
            conn, user.id, cid, NewMessage(role="user", content="Hello *world*", model_id=MODEL)
        )
        a = service.add_reply(
            conn, user.id, cid, q.id, NewMessage(role="assistant", content="Hi! ünïcode ✓", model_id=MODEL)
        )
    return [q, a]


def test_a_conversation_lifecycle_create_list_rename_export_share_delete(
    client: httpx.Client, alice: AppUser, db: Database
) -> None:
    # GIVEN a new conversation with an exchange in it
    created = client.post(
        "/conversations", json={"title": "  Trip to Goa ", "metadata": {"pinned": True}}, headers=alice.headers
    )
    assert created.status_code == 201
    conversation = created.json()
    assert conversation["title"] == "Trip to Goa" and conversation["metadata"] == {"pinned": True}
    cid = conversation["id"]
    seeded = seed_messages(db, alice, cid)

    # WHEN listed and searched by title
    listed = client.get("/conversations", headers=alice.headers).json()
    assert [c["id"] for c in listed["items"]] == [cid] and listed["next_cursor"] is None
    assert client.get("/conversations", params={"q": "goa"}, headers=alice.headers).json()["items"][0]["id"] == cid
    assert client.get("/conversations", params={"q": "paris"}, headers=alice.headers).json()["items"] == []
    # a LIKE wildcard in q is a literal, not "match everything"
    assert client.get("/conversations", params={"q": "%"}, headers=alice.headers).json()["items"] == []
    # and by a word of its messages (issue 28), each item saying where it matched
    assert listed["items"][0]["match"] is None
    by_title = client.get("/conversations", params={"q": "goa"}, headers=alice.headers).json()["items"]
    assert by_title[0]["match"] == {"field": "title", "message_id": None, "snippet": None}
    by_text = client.get("/conversations", params={"q": "world"}, headers=alice.headers).json()["items"]
    assert [c["id"] for c in by_text] == [cid]
    assert by_text[0]["match"]["field"] == "message" and by_text[0]["match"]["message_id"] == str(seeded[0].id)
    assert "world" in by_text[0]["match"]["snippet"]

    # THEN it reads back with its current branch
    full = client.get(f"/conversations/{cid}", headers=alice.headers).json()
    assert [m["content"] for m in full["messages"]] == ["Hello *world*", "Hi! ünïcode ✓"]
    message_keys = {
        "id", "conversation_id", "role", "content", "model_id", "tokens_used", "sequence_number",
        "revision_number", "revision_type", "original_message_id", "parent_message_id", "is_latest",
        "status", "created_at", "attachments", "sources",
    }  # fmt: skip
    assert set(full["messages"][0]) == message_keys

    renamed = client.patch(f"/conversations/{cid}", json={"title": "Goa, December"}, headers=alice.headers)
    assert renamed.status_code == 200 and renamed.json()["title"] == "Goa, December"
    assert renamed.json()["metadata"] == {"pinned": True}

    exported = client.get(f"/conversations/{cid}/export", params={"format": "markdown"}, headers=alice.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/markdown")
    assert 'attachment; filename="goa-december.md"' in exported.headers["content-disposition"]
    assert exported.text.startswith("# Goa, December\n") and "Hi! ünïcode ✓" in exported.text
    as_json = client.get(f"/conversations/{cid}/export", params={"format": "json"}, headers=alice.headers)
    document = json.loads(as_json.content)
    assert document["conversation"]["id"] == cid and len(document["messages"]) == 2
    assert document["conversation"]["metadata"] == {"pinned": True} and "exported_at" in document
    as_text = client.get(f"/conversations/{cid}/export", params={"format": "txt"}, headers=alice.headers)
    assert as_text.headers["content-type"].startswith("text/plain") and "You:\nHello *world*" in as_text.text
    bad_format = client.get(f"/conversations/{cid}/export", params={"format": "pdf"}, headers=alice.headers)
    assert bad_format.status_code == 422 and error_of(bad_format)["details"]["errors"][0]["field"] == "format"

    share = client.post(f"/conversations/{cid}/share", headers=alice.headers)
    assert share.status_code == 200
    token = share.json()["token"]
    assert share.json()["url"].endswith(f"/{token}")
    # sharing again returns the same link
    assert client.post(f"/conversations/{cid}/share", headers=alice.headers).json()["token"] == token
    public = client.get(f"/shared/{token}")  # no auth
    assert public.status_code == 200
    assert public.json()["title"] == "Goa, December"
    assert [m["content"] for m in public.json()["messages"]] == ["Hello *world*", "Hi! ünïcode ✓"]
    assert "user_id" not in json.dumps(public.json())

    # the snapshot is taken when shared: later changes do not show
    client.patch(f"/conversations/{cid}", json={"title": "Renamed later"}, headers=alice.headers)
    assert client.get(f"/shared/{token}").json()["title"] == "Goa, December"

    assert client.delete(f"/conversations/{cid}/share", headers=alice.headers).status_code == 204
    revoked = client.get(f"/shared/{token}")
    assert revoked.status_code == 404 and error_of(revoked)["code"] == "NOT_FOUND"
    new_token = client.post(f"/conversations/{cid}/share", headers=alice.headers).json()["token"]
    assert new_token != token

    deleted = client.delete(f"/conversations/{cid}", headers=alice.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/conversations/{cid}", headers=alice.headers).status_code == 404
    assert client.get(f"/shared/{new_token}").status_code == 404
    assert client.get("/conversations", headers=alice.headers).json()["items"] == []


def test_delete_removes_messages_and_shares_but_keeps_usage_unlinked(
    client: httpx.Client, alice: AppUser, db: Database
) -> None:
    cid = client.post("/conversations", json={}, headers=alice.headers).json()["id"]
    _, reply = seed_messages(db, alice, cid)
    client.post(f"/conversations/{cid}/share", headers=alice.headers)
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.usage_records (user_id, conversation_id, message_id, quota_key, requested_model,"
            " model_id, prompt_tokens, completion_tokens, cost) values (%s, %s, %s, 'small_messages', %s, %s, 5, 7, 0.001)",
            (alice.id, cid, reply.id, MODEL, MODEL),
        )
    assert client.delete(f"/conversations/{cid}", headers=alice.headers).status_code == 204
    with db.service_transaction() as conn:
        left = conn.execute(
            "select (select count(*) from public.chat_messages where conversation_id = %(c)s) as messages,"
            " (select count(*) from public.share_links where conversation_id = %(c)s) as shares,"
            " (select count(*) from public.usage_records where user_id = %(u)s and conversation_id is null"
            "  and message_id is null) as unlinked_usage",
            {"c": cid, "u": alice.id},
        ).fetchone()
    assert left == {"messages": 0, "shares": 0, "unlinked_usage": 1}


def test_another_users_conversation_is_404_on_every_route(
    client: httpx.Client, alice: AppUser, database_url: str, db: Database
) -> None:
    cid = client.post("/conversations", json={"title": "private"}, headers=alice.headers).json()["id"]
    question, _ = seed_messages(db, alice, cid)
    mid = question.id
    mallory = create_user(database_url)
    routes = [
        ("GET", f"/conversations/{cid}", None),
        ("PATCH", f"/conversations/{cid}", {"title": "pwned"}),
        ("DELETE", f"/conversations/{cid}", None),
        ("GET", f"/conversations/{cid}/messages", None),
        ("GET", f"/conversations/{cid}/messages/{mid}/revisions", None),
        ("POST", f"/conversations/{cid}/messages/{mid}/activate", None),
        ("POST", f"/conversations/{cid}/share", None),
        ("DELETE", f"/conversations/{cid}/share", None),
        ("GET", f"/conversations/{cid}/export", None),
    ]
    for method, path, body in routes:
        response = client.request(method, path, json=body, headers=mallory.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert error_of(response)["code"] == "NOT_FOUND"
    # and the same answer as for something that does not exist at all
    missing = client.get(f"/conversations/{uuid.uuid4()}", headers=mallory.headers)
    assert error_of(missing) == error_of(client.get(f"/conversations/{cid}", headers=mallory.headers))
    assert client.get("/conversations", headers=mallory.headers).json()["items"] == []
    assert client.get("/chat/history", params={"q": "world"}, headers=mallory.headers).json()["items"] == []
    # nothing changed for the owner
    assert client.get(f"/conversations/{cid}", headers=alice.headers).json()["title"] == "private"


def test_messages_and_revisions_and_activate_over_http(client: httpx.Client, alice: AppUser, db: Database) -> None:
    cid = client.post("/conversations", json={}, headers=alice.headers).json()["id"]
    question, answer = seed_messages(db, alice, cid)
    with db.user_transaction(alice.principal) as conn:
        edit = service.edit_message(
            conn, alice.id, uuid.UUID(cid), question.id, content="Hello again", model_id=MODEL
        )
    page = client.get(f"/conversations/{cid}/messages", headers=alice.headers).json()
    assert [m["content"] for m in page["items"]] == ["Hello again"]
    revisions = client.get(f"/conversations/{cid}/messages/{edit.id}/revisions", headers=alice.headers).json()
    assert [(r["revision_number"], r["is_latest"]) for r in revisions["items"]] == [(0, False), (1, True)]
    restored = client.post(f"/conversations/{cid}/messages/{question.id}/activate", headers=alice.headers)
    assert restored.status_code == 200
    assert [m["id"] for m in restored.json()["messages"]] == [str(question.id), str(answer.id)]


def test_pagination_walks_every_item_once(client: httpx.Client, alice: AppUser) -> None:
    ids = {
        client.post("/conversations", json={"title": f"c{i}"}, headers=alice.headers).json()["id"]
        for i in range(7)
    }
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/conversations", params=params, headers=alice.headers).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and set(seen) == ids
    bad = client.get("/conversations", params={"cursor": "not-a-cursor"}, headers=alice.headers)
    assert bad.status_code == 422 and error_of(bad)["details"]["errors"][0]["field"] == "cursor"
    too_big = client.get("/conversations", params={"limit": 101}, headers=alice.headers)
    assert too_big.status_code == 422 and error_of(too_big)["details"]["errors"][0]["field"] == "limit"


def test_history_search_finds_words_filters_by_model_and_dates(
    client: httpx.Client, alice: AppUser, db: Database
) -> None:
    cid = client.post("/conversations", json={"title": "search"}, headers=alice.headers).json()["id"]
    with db.user_transaction(alice.principal) as conn:
        q = service.append_message(
            conn,
            alice.id,
            uuid.UUID(cid),
            NewMessage(role="user", content="Best biryani in Hyderabad?", model_id=MODEL),
        )
        service.add_reply(
            conn,
            alice.id,
            uuid.UUID(cid),
            q.id,
            NewMessage(
                role="assistant", content="Try the biryani near Charminar.", model_id="anthropic/claude-3.5-haiku"
            ),
        )
    hits = client.get("/chat/history", params={"q": "biryani"}, headers=alice.headers).json()["items"]
    assert len(hits) == 2 and {h["conversation_id"] for h in hits} == {cid}
    assert set(hits[0]) == {"conversation_id", "message_id", "role", "snippet", "model", "created_at"}
    assert all("biryani" in h["snippet"].lower() for h in hits)
    by_model = client.get(
        "/chat/history", params={"q": "biryani", "model": "anthropic/claude-3.5-haiku"}, headers=alice.headers
    ).json()["items"]
    assert [h["role"] for h in by_model] == ["assistant"]
    future = client.get(
        "/chat/history", params={"q": "biryani", "from": "2999-01-01T00:00:00Z"}, headers=alice.headers
    )
    assert future.json()["items"] == []
    past = client.get(
        "/chat/history", params={"q": "biryani", "to": "2000-01-01T00:00:00Z"}, headers=alice.headers
    )
    assert past.json()["items"] == []
    assert client.get("/chat/history", params={"q": "pizza"}, headers=alice.headers).json()["items"] == []
    # websearch syntax never errors, whatever the user types
    odd = client.get("/chat/history", params={"q": '"unterminated & | !! ('}, headers=alice.headers)
    assert odd.status_code == 200


@pytest.mark.parametrize(
    ("headers", "label"),
    [
        ({}, "missing"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "wrong scheme"),
        ({"authorization": "Bearer not.a.jwt"}, "malformed"),
        ({"authorization": "Bearer " + token_for(uuid.uuid4(), expires_in_seconds=-3600)}, "expired"),
        ({"authorization": "Bearer " + token_for(uuid.uuid4(), audience="anon")}, "wrong audience"),
    ],
)
def test_bad_tokens_are_401_in_the_envelope(client: httpx.Client, headers: dict[str, str], label: str) -> None:
    response = client.get("/conversations", headers=headers)
    assert response.status_code == 401, label
    assert error_of(response)["code"] == "UNAUTHORIZED"


def test_a_suspended_user_is_403(client: httpx.Client, database_url: str) -> None:
    suspended = create_user(database_url, suspended=True)
    response = client.get("/conversations", headers=suspended.headers)
    assert response.status_code == 403 and error_of(response)["code"] == "FORBIDDEN"


def test_bad_input_is_400_422_or_413_in_the_envelope(client: httpx.Client, alice: AppUser) -> None:
    malformed = client.post(
        "/conversations", content=b'{"title": "x",', headers=alice.headers | {"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and error_of(malformed)["code"] == "BAD_REQUEST"

    invalid = client.post(
        "/conversations", json={"title": "", "metadata": "nope", "extra": 1}, headers=alice.headers
    )
    assert invalid.status_code == 422
    error = error_of(invalid)
    assert error["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in error["details"]["errors"]} == {"title", "metadata", "extra"}

    long_title = client.post("/conversations", json={"title": "x" * 201}, headers=alice.headers)
    assert long_title.status_code == 422
    empty_patch = client.patch(f"/conversations/{uuid.uuid4()}", json={}, headers=alice.headers)
    assert empty_patch.status_code == 422

    oversized = client.post(
        "/conversations", json={"title": "big", "metadata": {"blob": "x" * 300_000}}, headers=alice.headers
    )
    assert oversized.status_code == 413 and error_of(oversized)["code"] == "PAYLOAD_TOO_LARGE"

    not_an_id = client.get("/conversations/not-a-uuid", headers=alice.headers)
    assert not_an_id.status_code == 404 and error_of(not_an_id)["code"] == "NOT_FOUND"
    unknown_route = client.get("/nowhere", headers=alice.headers)
    assert unknown_route.status_code == 404 and error_of(unknown_route)["code"] == "NOT_FOUND"


def test_the_openapi_document_is_served_and_lists_every_route(client: httpx.Client) -> None:
    document = client.get("/conversations/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert {
        "/conversations",
        "/conversations/{conversation_id}",
        "/conversations/{conversation_id}/messages",
        "/conversations/{conversation_id}/messages/{message_id}/revisions",
        "/conversations/{conversation_id}/messages/{message_id}/activate",
        "/conversations/{conversation_id}/share",
        "/conversations/{conversation_id}/export",
        "/shared/{token}",
        "/chat/history",
    } <= set(paths)
