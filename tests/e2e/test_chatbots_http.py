"""A workspace's chatbots over HTTP through the local server (issue 25): create on two documents, list with
filters and stats, detail with the documents, patch (validated as a whole), toggle, the embed code, delete
then 404, the documents' side of the links, the templates; a viewer's writes are 403, a stranger's
everything 404, and the plan's limit is a 402."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from tests.conftest import AppUser, create_user
from tests.e2e.conftest import LocalServer
from tests.e2e.test_documents_http import add_member, personal_workspace

pytestmark = pytest.mark.e2e

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


def on_tier(database_url: str, user: AppUser, tier: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.users set subscription_tier = %s where id = %s", (tier, user.id))


def add_document(database_url: str, workspace_id: UUID, filename: str) -> str:
    document_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key, status)"
            " values (%s, %s, %s, 'text/plain', 5, %s, 'ready')",
            (document_id, workspace_id, filename, f"knowledge/{workspace_id}/{document_id}/{filename}"),
        )
    return str(document_id)


def create(client: httpx.Client, user: AppUser, workspace_id: UUID, **fields: Any) -> httpx.Response:
    body = {"name": "Helper", "model": MODEL, **fields}
    return client.post(f"/workspaces/{workspace_id}/chatbots", json=body, headers=user.headers)


def test_a_chatbot_from_creation_to_deletion(
    client: httpx.Client, database_url: str, local_server: LocalServer
) -> None:
    owner, viewer, stranger = (create_user(database_url) for _ in range(3))
    on_tier(database_url, owner, "pro")
    workspace = personal_workspace(database_url, owner)
    add_member(database_url, workspace, viewer, "viewer")
    refunds_doc = add_document(database_url, workspace, "refunds.txt")
    shipping_doc = add_document(database_url, workspace, "shipping.txt")

    # create on two documents
    created = create(
        client,
        owner,
        workspace,
        name="Refunds helper",
        use_case="support",
        document_ids=[refunds_doc, shipping_doc],
        retrieval={"top_k": 6, "min_score": 0.4},
        fallback={"mode": "message", "message": "Ask a human."},
        widget={"title": "Help", "color": "#112233", "allowed_origins": ["HTTPS://Shop.Example.com/"]},
        status="active",
    )
    assert created.status_code == 201, created.text
    bot = created.json()
    assert bot["document_ids"] == [refunds_doc, shipping_doc]
    assert bot["widget"]["allowed_origins"] == ["https://shop.example.com"]
    assert bot["public_id"].startswith("cb_") and bot["created_at"].endswith("Z")
    other = create(client, owner, workspace, name="Sales desk", use_case="sales").json()

    # invalid bodies name their fields
    bad = create(client, owner, workspace, temperature=3, widget={"color": "red"}, fallback={"mode": "message"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["error"]["details"]["errors"]} == {
        "temperature",
        "widget.color",
        "fallback",
    }
    above = create(client, owner, workspace, model="anthropic/claude-opus-4")  # enterprise only
    assert above.status_code == 422 and above.json()["error"]["details"]["errors"][0]["field"] == "model"

    # list with filters, and stats
    listed = client.get(f"/workspaces/{workspace}/chatbots", headers=viewer.headers)
    assert listed.status_code == 200, listed.text
    assert [b["name"] for b in listed.json()["items"]] == ["Sales desk", "Refunds helper"]
    assert listed.json()["items"][1]["stats"] == {"conversations": 0, "messages": 0, "satisfaction": None}
    for params, names in [
        ({"use_case": "support"}, ["Refunds helper"]),
        ({"status": "draft"}, ["Sales desk"]),
        ({"q": "refund"}, ["Refunds helper"]),
    ]:
        page = client.get(f"/workspaces/{workspace}/chatbots", params=params, headers=owner.headers).json()
        assert [b["name"] for b in page["items"]] == names, params
    assert client.get(f"/workspaces/{workspace}/chatbots?status=gone", headers=owner.headers).status_code == 422

    # detail
    detail = client.get(f"/chatbots/{bot['id']}", headers=viewer.headers)
    assert detail.status_code == 200, detail.text
    assert [(d["filename"], d["status"]) for d in detail.json()["documents"]] == [
        ("refunds.txt", "ready"),
        ("shipping.txt", "ready"),
    ]
    assert detail.json()["recent_conversations"] == []

    # patch: any subset, validated as a whole
    patched = client.patch(
        f"/chatbots/{bot['id']}",
        json={"retrieval": {"top_k": 9}, "document_ids": [shipping_doc]},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["retrieval"] == {"top_k": 9, "min_score": 0.4}
    assert patched.json()["document_ids"] == [shipping_doc]
    refused = client.patch(
        f"/chatbots/{other['id']}", json={"fallback": {"mode": "message"}}, headers=owner.headers
    )
    assert refused.status_code == 422 and refused.json()["error"]["details"]["errors"][0]["field"] == "fallback"

    # the documents' side
    filtered = client.get(
        f"/workspaces/{workspace}/documents", params={"chatbot_id": bot["id"]}, headers=owner.headers
    )
    assert [d["id"] for d in filtered.json()["items"]] == [shipping_doc]
    linked = client.patch(f"/documents/{refunds_doc}", json={"chatbot_ids": [other["id"]]}, headers=owner.headers)
    assert linked.status_code == 200, linked.text
    assert linked.json()["chatbot_ids"] == [other["id"]]

    # toggle, embed code
    toggled = client.post(f"/chatbots/{bot['id']}/toggle", headers=owner.headers)
    assert toggled.status_code == 200 and toggled.json()["status"] == "disabled"
    assert client.post(f"/chatbots/{bot['id']}/toggle", headers=owner.headers).json()["status"] == "active"
    embed = client.get(f"/chatbots/{bot['id']}/embed-code", headers=viewer.headers)
    assert embed.status_code == 200
    base = local_server.base_url.rstrip("/")
    assert embed.json() == {
        "html": f'<script src="{base}/widget.js" data-chatbot="{bot["public_id"]}" async></script>',
        "script_url": f"{base}/widget.js",
        "public_id": bot["public_id"],
    }
    stats = client.get(
        f"/chatbots/{bot['id']}/stats", params={"from": "2026-01-01", "to": "2026-01-03"}, headers=viewer.headers
    )
    assert stats.status_code == 200, stats.text
    assert [d["date"] for d in stats.json()["days"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert (
        client.get(f"/chatbots/{bot['id']}/stats?from=2026-02-01&to=2026-01-01", headers=owner.headers).status_code
        == 422
    )

    # a viewer reads but does not write; a stranger sees nothing
    for method, path in [
        ("PATCH", f"/chatbots/{bot['id']}"),
        ("DELETE", f"/chatbots/{bot['id']}"),
        ("POST", f"/chatbots/{bot['id']}/toggle"),
        ("POST", f"/chatbots/{bot['id']}/duplicate"),
        ("POST", f"/chatbots/{bot['id']}/reset-stats"),
        ("POST", f"/workspaces/{workspace}/chatbots"),
    ]:
        body = {"name": "Mine", "model": MODEL} if method != "DELETE" else None
        answer = client.request(method, path, json=body, headers=viewer.headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "FORBIDDEN"
        assert client.request(method, path, json=body, headers=stranger.headers).status_code == 404, (method, path)
    for path in [
        f"/chatbots/{bot['id']}",
        f"/chatbots/{bot['id']}/embed-code",
        f"/chatbots/{bot['id']}/stats",
        f"/workspaces/{workspace}/chatbots",
    ]:
        assert client.get(path, headers=stranger.headers).status_code == 404, path
    assert client.get(f"/chatbots/{bot['id'].upper()}", headers=owner.headers).status_code == 404

    # duplicate counts toward the plan; delete, then 404 everywhere
    duplicate = client.post(f"/chatbots/{bot['id']}/duplicate", headers=owner.headers)
    assert duplicate.status_code == 201, duplicate.text
    assert (duplicate.json()["name"], duplicate.json()["status"]) == ("Refunds helper (copy)", "draft")
    deleted = client.delete(
        f"/chatbots/{bot['id']}", params={"keep_conversations": "false"}, headers=owner.headers
    )
    assert deleted.status_code == 204
    assert client.get(f"/chatbots/{bot['id']}", headers=owner.headers).status_code == 404
    assert client.delete(f"/chatbots/{bot['id']}", headers=owner.headers).status_code == 404
    names = [
        b["name"] for b in client.get(f"/workspaces/{workspace}/chatbots", headers=owner.headers).json()["items"]
    ]
    assert names == ["Refunds helper (copy)", "Sales desk"]
    workspace_stats = client.get(f"/workspaces/{workspace}", headers=owner.headers).json()["stats"]
    assert workspace_stats["chatbots"] == 2

    on_tier(database_url, owner, "free")
    limited = create(client, owner, workspace)
    assert limited.status_code == 402
    assert limited.json()["error"] == {
        "code": "PLAN_LIMIT",
        "message": "Your plan's limit of chatbots is reached",
        "details": {"limit": 1, "used": 2, "tier": "free"},
    }


def test_the_templates_are_for_any_signed_in_user(client: httpx.Client, database_url: str) -> None:
    user = create_user(database_url)
    answer = client.get("/chatbot-templates", headers=user.headers)
    assert answer.status_code == 200, answer.text
    use_cases = {t["use_case"] for t in answer.json()["items"]}
    assert use_cases == {"support", "sales", "faq", "onboarding", "internal", "other"}
    only = client.get("/chatbot-templates", params={"use_case": "sales"}, headers=user.headers).json()["items"]
    assert {t["use_case"] for t in only} == {"sales"}
    assert client.get("/chatbot-templates").status_code == 401
