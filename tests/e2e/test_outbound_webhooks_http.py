"""Outbound webhooks over HTTP through the local server (issue 28 item 3): an admin saves the workspace's
endpoint (the secret shown once), a real local ingest of a small file reaches a receiver on loopback as
`document.processed` with a Standard Webhooks signature the specification's check accepts; a receiver
answering 500 twice then 200 gets three attempts with growing waits and one `succeeded` delivery; a
redirecting receiver's attempt fails and the redirect's target gets nothing; a hanging receiver is cut at
the timeout (1 s here); a private URL is refused at save time; another workspace's webhook is 404, an
editor's or a viewer's request 403; a widget visitor's rating and a document that fails reach the
receiver as `conversation.rated` and `document.failed`. (The refusal at send time, with the loopback setting off, is in
tests/integration/test_outbound_webhooks.py: this server allows loopback for its receivers.)"""

from __future__ import annotations

import json
import time
from datetime import datetime
from itertools import pairwise
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from tests.conftest import AppUser, create_user
from tests.e2e.test_documents_http import add_member, personal_workspace, uploaded
from tests.e2e.test_widget_http import SHOP, session_for
from tests.webhook_receiver import Answer, WebhookReceiver, verify_standard_webhook
from tests.widget_support import create_chatbot, new_visitor_id, seed_conversation

pytestmark = pytest.mark.e2e

RETRY_BASE_SECONDS = 0.05  # ONEAI_WEBHOOK_RETRY_BASE_SECONDS of the session's server


@pytest.fixture
def owner(database_url: str) -> AppUser:
    return create_user(database_url)


def save(client: httpx.Client, user: AppUser, workspace_id: UUID, url: str, events: list[str]) -> httpx.Response:
    return client.put(
        f"/workspaces/{workspace_id}/webhook", json={"url": url, "events": events}, headers=user.headers
    )


def ingest(
    client: httpx.Client, user: AppUser, workspace_id: UUID, database_url: str, filename: str, **upload: Any
) -> str:
    """A small file uploaded and processed by the local ingest (the reprocess message starts it)."""
    document = uploaded(client, user, workspace_id, filename=filename, **upload)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.documents set status = 'failed', error = 'x' where id = %s", (document["id"],))
    assert client.post(f"/documents/{document['id']}/reprocess", headers=user.headers).status_code == 200
    return str(document["id"])


def deliveries(client: httpx.Client, user: AppUser, workspace_id: UUID, **params: str) -> list[dict[str, Any]]:
    answer = client.get(f"/workspaces/{workspace_id}/webhook/deliveries", params=params, headers=user.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def settled(client: httpx.Client, user: AppUser, workspace_id: UUID, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = deliveries(client, user, workspace_id)
        if len(items) >= count and all(item["status"] != "pending" for item in items):
            return items
        time.sleep(0.1)
    raise AssertionError(f"deliveries not settled: {items}")


def test_a_processed_document_reaches_the_receiver_signed_and_retries_grow_until_it_succeeds(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    with WebhookReceiver(script=[Answer(status=500), Answer(status=500)]) as receiver:
        created = save(client, owner, workspace_id, receiver.url, ["document.processed", "document.failed"])
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        shown = client.get(f"/workspaces/{workspace_id}/webhook", headers=owner.headers).json()
        assert "secret" not in shown and shown["status"] == "enabled" and shown["disabled_reason"] is None
        changed = save(client, owner, workspace_id, receiver.url, ["document.processed"])
        assert changed.status_code == 200 and changed.json()["secret"] is None

        document_id = ingest(client, owner, workspace_id, database_url, "refunds.txt")
        requests = receiver.wait_for(3)
        (delivery,) = settled(client, owner, workspace_id, 1)

    for request in requests:
        verify_standard_webhook(secret, request.headers, request.body)
    assert len({r.headers["webhook-id"] for r in requests}) == 1 and requests[0].body == requests[2].body
    body = json.loads(requests[0].body)
    assert body["type"] == "document.processed"
    assert body["data"]["document_id"] == document_id and body["data"]["status"] == "ready"
    assert body["data"]["chunks"] >= 1 and "text" not in body["data"]

    assert delivery["status"] == "succeeded" and delivery["event_type"] == "document.processed"
    assert delivery["message_id"] == requests[0].headers["webhook-id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["answered 500", "answered 500", None]
    times = [datetime.fromisoformat(a["attempted_at"]) for a in delivery["attempts"]]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    # each wait at least its step's floor: base, then twice the base
    assert gaps[0] >= RETRY_BASE_SECONDS and gaps[1] >= 2 * RETRY_BASE_SECONDS, gaps
    assert deliveries(client, owner, workspace_id, status="failed") == []


def test_a_redirect_fails_the_attempt_and_its_target_gets_nothing(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    with WebhookReceiver() as target, WebhookReceiver(default=Answer(status=307)) as hop:
        hop.default.headers["location"] = target.url
        assert save(client, owner, workspace_id, hop.url, ["credits.low"]).status_code == 201
        answer = client.post(f"/workspaces/{workspace_id}/webhook/test", headers=owner.headers)
        assert answer.status_code == 200, answer.text
        assert len(hop.received) == 1 and target.received == []
    delivery = answer.json()
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "failed"
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] == 307 and "redirects are not followed" in attempt["error"]


def test_a_hanging_receiver_is_cut_at_the_timeout(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    with WebhookReceiver(script=[Answer(hang_seconds=4)]) as receiver:
        created = save(client, owner, workspace_id, receiver.url, ["credits.low"])
        started = time.monotonic()
        answer = client.post(f"/workspaces/{workspace_id}/webhook/test", headers=owner.headers)
        took = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        (attempt,) = answer.json()["attempts"]
        assert attempt["error"] == "no answer within 1 s" and attempt["status_code"] is None
        assert took < 3.5
        verify_standard_webhook(created.json()["secret"], receiver.received[0].headers, receiver.received[0].body)


def test_a_private_url_is_refused_at_save_time(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    for url in ("http://10.0.0.7/hooks", "https://169.254.169.254/latest/meta-data", "http://192.168.1.10:8080/"):
        answer = save(client, owner, workspace_id, url, ["document.processed"])
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["error"]["details"]["errors"]
        assert error["field"] == "url" and "not a public address" in error["message"]
    bad_event = save(client, owner, workspace_id, "https://hooks.example.com/x", ["document.deleted"])
    assert bad_event.status_code == 422
    empty = save(client, owner, workspace_id, "https://hooks.example.com/x", [])
    assert empty.status_code == 422
    assert client.get(f"/workspaces/{workspace_id}/webhook", headers=owner.headers).status_code == 404


def test_another_workspaces_webhook_is_404_and_editors_and_viewers_get_403(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    stranger, editor, viewer = (create_user(database_url) for _ in range(3))
    add_member(database_url, workspace_id, editor, "editor")
    add_member(database_url, workspace_id, viewer, "viewer")
    with WebhookReceiver() as receiver:
        assert save(client, owner, workspace_id, receiver.url, ["credits.low"]).status_code == 201
        base = f"/workspaces/{workspace_id}/webhook"
        calls = [
            ("GET", base, None),
            ("PUT", base, {"url": receiver.url, "events": ["credits.low"]}),
            ("DELETE", base, None),
            ("POST", f"{base}/test", None),
            ("POST", f"{base}/rotate-secret", None),
            ("GET", f"{base}/deliveries", None),
        ]
        for user, expected in ((stranger, 404), (editor, 403), (viewer, 403)):
            for method, path, body in calls:
                answer = client.request(method, path, json=body, headers=user.headers)
                assert answer.status_code == expected, (method, path, answer.text)
        assert receiver.received == []
    rotated = client.post(f"/workspaces/{workspace_id}/webhook/rotate-secret", headers=owner.headers)
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    assert client.delete(f"/workspaces/{workspace_id}/webhook", headers=owner.headers).status_code == 204
    assert client.get(f"/workspaces/{workspace_id}/webhook", headers=owner.headers).status_code == 404


def test_a_rating_and_a_failed_document_reach_the_receiver(client: httpx.Client, database_url: str) -> None:
    chatbot = create_chatbot(database_url)
    admin = create_user(database_url)
    add_member(database_url, chatbot.workspace_id, admin, "admin")
    with WebhookReceiver() as receiver:
        created = save(
            client, admin, chatbot.workspace_id, receiver.url, ["conversation.rated", "document.failed"]
        )
        secret = created.json()["secret"]
        visitor = new_visitor_id()
        token = session_for(client, chatbot.public_id, visitor).json()["session_token"]
        conversation = seed_conversation(database_url, chatbot, visitor, [("user", "Hi", None)])
        rating = f"/public/chatbots/{chatbot.public_id}/conversations/{conversation}/rating"
        headers = {"authorization": f"Bearer {token}", "origin": SHOP}
        assert (
            client.post(rating, json={"score": 4, "comment": "kept private"}, headers=headers).status_code == 200
        )
        (rated,) = receiver.wait_for(1)
        document_id = ingest(client, admin, chatbot.workspace_id, database_url, "empty.txt", data=b"   \n")
        failed = receiver.wait_for(2)[1]
    for request in (rated, failed):
        verify_standard_webhook(secret, request.headers, request.body)
    assert json.loads(rated.body) == {
        "type": "conversation.rated",
        "timestamp": json.loads(rated.body)["timestamp"],
        "data": {
            "workspace_id": str(chatbot.workspace_id),
            "chatbot_id": str(chatbot.id),
            "conversation_id": str(conversation),
            "score": 4,
        },
    }
    body = json.loads(failed.body)
    assert body["type"] == "document.failed" and body["data"]["document_id"] == document_id
    shown = client.get(f"/documents/{document_id}", headers=admin.headers).json()
    assert body["data"]["status"] == shown["status"] == "failed" and body["data"]["error"] == shown["error"]
