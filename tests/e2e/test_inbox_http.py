"""The inbox over HTTP through the local server (issue 28): a chatbot's visitor conversations (written as
the widget's chat will write them) are listed, found by a word of their text, tagged, resolved, exported as
JSON, CSV and Markdown (a large export through a download link to the object store), counted per day and
deleted; a viewer is 403, another workspace's member 404."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import AppUser, create_user
from tests.e2e.conftest import LocalServer
from tests.e2e.test_documents_http import add_member, personal_workspace
from tests.inbox_support import add_chatbot, seed_visitor_conversation

pytestmark = pytest.mark.e2e


def make_chatbot(client: httpx.Client, owner: AppUser, workspace: Any) -> str:
    created = client.post(
        f"/workspaces/{workspace}/chatbots",
        json={"name": "Shop help", "model": "openai/gpt-4o-mini", "status": "active"},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_the_inbox_from_a_visitors_conversation_to_its_export_and_deletion(
    client: httpx.Client, database_url: str, local_server: LocalServer
) -> None:
    owner, editor, viewer, stranger = (create_user(database_url) for _ in range(4))
    workspace = personal_workspace(database_url, owner)
    add_member(database_url, workspace, editor, "editor")
    add_member(database_url, workspace, viewer, "viewer")
    chatbot = make_chatbot(client, owner, workspace)
    refund = seed_visitor_conversation(
        database_url, chatbot, workspace,
        [("user", "Can I get a refund for my order?"), ("assistant", "Yes, refunds take 5 days.")], rating=4,
    )  # fmt: skip
    parcel = seed_visitor_conversation(database_url, chatbot, workspace, [("user", "Where is my parcel?")])
    base = f"/chatbots/{chatbot}/conversations"

    # listed newest first, with the visitor's info
    listed = client.get(base, headers=editor.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [i["id"] for i in items] == [str(parcel), str(refund)]
    assert items[1]["visitor"]["page_url"] == "https://shop.example/help" and items[1]["messages"] == 2
    assert items[1]["started_at"].endswith("Z") and items[1]["rating"] == 4 and items[1]["match"] is None

    # searchable by a word of its text, saying where
    found = client.get(base, params={"q": "refund"}, headers=editor.headers).json()["items"]
    assert [i["id"] for i in found] == [str(refund)]
    assert "refund" in found[0]["match"]["snippet"]

    # tagged and resolved
    patched = client.patch(
        f"/chatbot-conversations/{refund}",
        json={"tags": ["billing", "refund"], "status": "resolved", "notes": "Refund sent"},
        headers=editor.headers,
    )
    assert patched.status_code == 200, patched.text
    detail = client.get(f"/chatbot-conversations/{refund}", headers=editor.headers).json()
    assert (detail["tags"], detail["status"], detail["notes"]) == (
        ["billing", "refund"],
        "resolved",
        "Refund sent",
    )
    assert [m["content"] for m in detail["messages"]] == [
        "Can I get a refund for my order?",
        "Yes, refunds take 5 days.",
    ]
    assert detail["rating"]["score"] == 4 and detail["visitor"]["user_agent"] == "Mozilla/5.0 (test)"
    assert "source_hash" not in str(detail)
    assert [
        i["id"] for i in client.get(base, params={"status": "resolved"}, headers=editor.headers).json()["items"]
    ] == [str(refund)]
    for bad in ({"tags": [f"t{n}" for n in range(21)]}, {"status": "closed"}, {"notes": "x" * 5001}):
        refused = client.patch(f"/chatbot-conversations/{refund}", json=bad, headers=editor.headers)
        assert refused.status_code == 422, (bad, refused.text)

    # exported in the three formats
    as_json = client.get(f"{base}/export", params={"format": "json"}, headers=editor.headers)
    assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
    assert as_json.headers["content-disposition"].startswith("attachment;")
    assert [c["id"] for c in as_json.json()["items"]] == [str(parcel), str(refund)]
    as_csv = client.get(f"{base}/export", params={"format": "csv", "ids": str(refund)}, headers=editor.headers)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["role"], r["tags"], r["status"]) for r in rows] == [
        ("user", "billing;refund", "resolved"),
        ("assistant", "billing;refund", "resolved"),
    ]
    as_md = client.get(f"{base}/export", params={"format": "md"}, headers=editor.headers)
    assert as_md.status_code == 200 and as_md.headers["content-type"].startswith("text/markdown")
    assert "Where is my parcel?" in as_md.text and "Tags: billing, refund" in as_md.text

    # stats per day
    stats = client.get(f"{base}/stats", headers=editor.headers).json()
    assert stats["total"] == 2 and stats["avg_messages"] == 1.5 and stats["avg_rating"] == 4.0
    assert sum(d["conversations"] for d in stats["by_day"]) == 2 and len(stats["by_day"]) == 30

    # a viewer is refused; another workspace's member finds nothing
    assert client.get(base, headers=viewer.headers).status_code == 403
    assert client.get(f"/chatbot-conversations/{refund}", headers=viewer.headers).status_code == 403
    for method, path, body in (
        ("GET", base, None), ("GET", f"{base}/export", None), ("GET", f"{base}/stats", None),
        ("POST", f"{base}/bulk-delete", {"ids": [str(refund)]}),
        ("GET", f"/chatbot-conversations/{refund}", None),
        ("PATCH", f"/chatbot-conversations/{refund}", {"status": "archived"}),
        ("DELETE", f"/chatbot-conversations/{refund}", None),
    ):  # fmt: skip
        answer = client.request(method, path, json=body, headers=stranger.headers)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "NOT_FOUND"

    # deleted, one and in bulk
    assert client.delete(f"/chatbot-conversations/{parcel}", headers=editor.headers).status_code == 204
    assert client.get(f"/chatbot-conversations/{parcel}", headers=editor.headers).status_code == 404
    bulk = client.post(f"{base}/bulk-delete", json={"ids": [str(refund), str(parcel)]}, headers=editor.headers)
    assert bulk.status_code == 200 and bulk.json() == {"deleted": 1}
    assert client.get(base, headers=editor.headers).json()["items"] == []


def test_a_large_export_is_a_download_link_to_the_whole_file(
    client: httpx.Client, database_url: str, local_server: LocalServer
) -> None:
    owner = create_user(database_url)
    workspace = personal_workspace(database_url, owner)
    chatbot = add_chatbot(database_url, workspace)
    with psycopg.connect(database_url, autocommit=True) as conn:  # ~7 MB of JSON: more than one answer holds
        conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_id, started_at)"
            " select %s, %s, 'visitor-' || lpad(g::text, 10, '0'), now() - g * interval '1 second'"
            " from generate_series(1, 6000) g",
            (workspace, chatbot),
        )
        conn.execute(
            "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number)"
            " select vc.id, vc.workspace_id, 'user', repeat('a question about the order ', 30), 1"
            " from public.visitor_conversations vc where vc.chatbot_id = %s",
            (chatbot,),
        )
    answer = client.get(f"/chatbots/{chatbot}/conversations/export", headers=owner.headers)
    assert answer.status_code == 303, answer.text[:500]
    link = answer.headers["location"]
    assert answer.json()["url"] == link and answer.json()["bytes"] > 6_000_000
    with httpx.Client(timeout=30) as outside:  # the object store's link, no token
        downloaded = outside.get(link)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-disposition"].startswith("attachment;")
    assert len(downloaded.json()["items"]) == 6000
