"""The knowledge base's documents over HTTP through the local server and the session's local S3 (moto's
server with S3's POST policy checks, as under `make dev`): the presigned upload and what its policy
refuses, list/filter/sort, detail, metadata changes, delete (the file and the chunks gone), bulk delete,
reprocess, download, the chunks view, the hybrid search, a stranger's 404s, a viewer's 403s, the plan's
402s. Chunks are written directly with the service role (the ingest function is another part), with the
offline embeddings the fake OpenRouter also answers queries with."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from local.s3_server import LocalS3
from oneai.db.knowledge import vector_literal
from oneai.knowledge.offline_embedding import offline_embedding
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_BUCKET

pytestmark = pytest.mark.e2e

TEXT = b"Refunds are paid within 14 days of the request.\n"
REFUND_SENTENCE = "Refunds are paid within fourteen days to the original card."
OTHER_SENTENCES = [
    "The office is closed on public holidays and weekends.",
    "Shipping to Europe takes five to seven working days.",
    "Passwords must be at least twelve characters long.",
]


@pytest.fixture
def owner(database_url: str) -> AppUser:
    return create_user(database_url)


def personal_workspace(database_url: str, user: AppUser) -> UUID:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select id from public.workspaces where owner_id = %s and personal", (user.id,)
        ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def add_member(database_url: str, workspace_id: UUID, user: AppUser, role: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, %s)",
            (workspace_id, user.id, role),
        )


def start(
    client: httpx.Client,
    user: AppUser,
    workspace_id: UUID,
    *,
    data: bytes = TEXT,
    filename: str = "refunds.txt",
    media_type: str = "text/plain",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    body = {"filename": filename, "media_type": media_type, "size": len(data), "tags": tags or []}
    response = client.post(f"/workspaces/{workspace_id}/documents", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def post_to_s3(upload: dict[str, Any], data: bytes, content_type: str, **changes: str) -> httpx.Response:
    fields = {**upload["upload"]["fields"], **changes}
    return httpx.post(upload["upload"]["url"], data=fields, files={"file": ("f", data, content_type)}, timeout=10)


def uploaded(client: httpx.Client, user: AppUser, workspace_id: UUID, **kwargs: Any) -> dict[str, Any]:
    started = start(client, user, workspace_id, **kwargs)
    data = kwargs.get("data", TEXT)
    assert post_to_s3(started, data, kwargs.get("media_type", "text/plain")).status_code == 204
    return started


def keys_under(local_s3: LocalS3, prefix: str) -> list[str]:
    listed = local_s3.client().list_objects_v2(Bucket=E2E_BUCKET, Prefix=prefix)
    return [str(item["Key"]) for item in listed.get("Contents", [])]


def insert_chunks(database_url: str, workspace_id: UUID, document_id: str, texts: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for index, text in enumerate(texts):
            conn.execute(
                "insert into public.document_chunks (workspace_id, document_id, chunk_index, text, page, tokens,"
                " embedding) values (%s, %s, %s, %s, 1, %s, %s::extensions.vector)",
                (
                    workspace_id,
                    document_id,
                    index,
                    text,
                    len(text.split()),
                    vector_literal(offline_embedding(text)),
                ),
            )


def chunk_count(database_url: str, document_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select count(*) from public.document_chunks where document_id = %s", (document_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_upload_lands_at_the_pinned_key_and_the_policy_refuses_other_keys_sizes_and_types(
    client: httpx.Client, owner: AppUser, database_url: str, local_s3: LocalS3
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    started = start(client, owner, workspace_id, filename="Q3 Report (final).txt")
    key = started["upload"]["fields"]["key"]
    assert key == f"knowledge/{workspace_id}/{started['id']}/Q3_Report_final_.txt"

    other_key = f"knowledge/{uuid.uuid4()}/{started['id']}/x.txt"
    assert post_to_s3(started, TEXT, "text/plain", key=other_key).status_code == 403
    assert post_to_s3(started, TEXT + b"more", "text/plain").status_code in {400, 403}
    assert post_to_s3(started, b"", "text/plain").status_code in {400, 403}  # an empty file: refused by S3
    assert post_to_s3(started, TEXT, "text/html", **{"Content-Type": "text/html"}).status_code == 403
    assert keys_under(local_s3, f"knowledge/{workspace_id}/") == []

    assert post_to_s3(started, TEXT, "text/plain").status_code == 204
    assert keys_under(local_s3, f"knowledge/{workspace_id}/") == [key]
    detail = client.get(f"/documents/{started['id']}", headers=owner.headers).json()
    assert detail["status"] == "uploading"
    assert detail["size"] == len(TEXT)
    assert detail["progress"] == {"chunks_done": 0, "chunks_total": None}
    assert detail["stats"] == {"retrievals_30d": 0}

    download = client.get(f"/documents/{started['id']}/download", headers=owner.headers, follow_redirects=False)
    assert download.status_code == 302
    assert httpx.get(download.headers["location"], timeout=10).content == TEXT


def test_refused_types_and_sizes_are_422(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    for body in (
        {"filename": "tool.exe", "media_type": "application/octet-stream", "size": 10},
        {"filename": "a.pdf", "media_type": "text/plain", "size": 10},
        {"filename": "big.pdf", "media_type": "application/pdf", "size": 20 * 1024 * 1024 + 1},
        {"filename": "fifty.csv", "media_type": "text/csv", "size": 50 * 1024 * 1024},  # one 50 MB line
        {"filename": "empty.txt", "media_type": "text/plain", "size": 0},
        {"filename": "a.txt", "media_type": "text/plain", "size": 10, "chatbot_ids": [str(uuid.uuid4())]},
        {"filename": "a.txt", "media_type": "text/plain", "size": "10"},
        {"filename": "a.txt", "media_type": "text/plain", "size": True},
    ):
        response = client.post(f"/workspaces/{workspace_id}/documents", json=body, headers=owner.headers)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    search = f"/workspaces/{workspace_id}/knowledge/search"
    for body in (
        {"query": "refunds", "min_score": False},
        {"query": "refunds", "top_k": "5"},
        {"query": "refunds", "top_k": 5.0},
    ):
        assert client.post(search, json=body, headers=owner.headers).status_code == 422, body


def test_list_filter_sort_patch_and_quota(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    small = uploaded(client, owner, workspace_id, data=b"small", filename="alpha.txt", tags=["policy"])
    big = uploaded(
        client, owner, workspace_id, data=b"a much bigger file", filename="beta.md", media_type="text/markdown"
    )
    url = f"/workspaces/{workspace_id}/documents"

    by_size = client.get(url, params={"sort": "-size"}, headers=owner.headers).json()
    assert [d["id"] for d in by_size["items"]] == [big["id"], small["id"]]
    assert by_size["quota"]["count"] == 2
    assert by_size["quota"]["bytes"] == len(b"small") + len(b"a much bigger file")
    assert by_size["quota"]["limits"]["documents"] == 10
    paged = client.get(url, params={"sort": "size", "limit": 1}, headers=owner.headers).json()
    assert [d["id"] for d in paged["items"]] == [small["id"]]
    second = client.get(
        url, params={"sort": "size", "limit": 1, "cursor": paged["next_cursor"]}, headers=owner.headers
    )
    assert [d["id"] for d in second.json()["items"]] == [big["id"]]
    assert second.json()["next_cursor"] is None

    assert [d["id"] for d in client.get(url, params={"q": "polic"}, headers=owner.headers).json()["items"]] == [
        small["id"]
    ]
    assert [d["id"] for d in client.get(url, params={"q": "BETA"}, headers=owner.headers).json()["items"]] == [
        big["id"]
    ]
    assert client.get(url, params={"status": "ready"}, headers=owner.headers).json()["items"] == []

    chatbots = client.patch(
        f"/documents/{small['id']}", json={"chatbot_ids": [str(uuid.uuid4())]}, headers=owner.headers
    )
    assert chatbots.status_code == 422  # not a chatbot of the workspace: refused, not silently ignored
    patched = client.patch(
        f"/documents/{small['id']}",
        json={"filename": "renamed.txt", "tags": ["faq"], "description": "the FAQ"},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["filename"], patched.json()["tags"], patched.json()["description"]) == (
        "renamed.txt",
        ["faq"],
        "the FAQ",
    )


def test_delete_removes_the_file_and_the_chunks(
    client: httpx.Client, owner: AppUser, database_url: str, local_s3: LocalS3
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    one, two, three = (uploaded(client, owner, workspace_id, filename=f"{n}.txt") for n in ("one", "two", "three"))
    for document in (one, two, three):
        insert_chunks(database_url, workspace_id, document["id"], ["some text", "more text"])
    chunks = client.get(f"/documents/{one['id']}/chunks", params={"limit": 1}, headers=owner.headers).json()
    assert [(c["index"], c["text"], c["page"]) for c in chunks["items"]] == [(0, "some text", 1)]
    rest = client.get(
        f"/documents/{one['id']}/chunks", params={"cursor": chunks["next_cursor"]}, headers=owner.headers
    )
    assert [c["index"] for c in rest.json()["items"]] == [1]
    assert client.get(f"/documents/{one['id']}", headers=owner.headers).json()["chunks"] == 2

    assert client.delete(f"/documents/{one['id']}", headers=owner.headers).status_code == 204
    assert client.get(f"/documents/{one['id']}", headers=owner.headers).status_code == 404
    assert chunk_count(database_url, one["id"]) == 0
    assert keys_under(local_s3, f"knowledge/{workspace_id}/{one['id']}/") == []

    deleted = client.post(
        f"/workspaces/{workspace_id}/documents/bulk-delete",
        json={"ids": [two["id"], three["id"]]},
        headers=owner.headers,
    )
    assert deleted.status_code == 204
    assert keys_under(local_s3, f"knowledge/{workspace_id}/") == []
    assert chunk_count(database_url, two["id"]) + chunk_count(database_url, three["id"]) == 0


def test_reprocess_queues_again(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    failed = uploaded(client, owner, workspace_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.documents set status = 'failed', error = 'the file is empty' where id = %s",
            (failed["id"],),
        )
    again = client.post(f"/documents/{failed['id']}/reprocess", headers=owner.headers)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["error"]) == ("queued", None)

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.documents set status = 'failed', error = 'the file is empty' where id = %s",
            (failed["id"],),
        )
    bulk = client.post(f"/workspaces/{workspace_id}/documents/bulk-reprocess", headers=owner.headers)
    assert bulk.json() == {"ids": [failed["id"]]}
    none_failed = client.post(f"/workspaces/{workspace_id}/documents/bulk-reprocess", headers=owner.headers)
    assert (none_failed.status_code, none_failed.json()) == (200, {"ids": []})
    assert client.get(f"/documents/{failed['id']}", headers=owner.headers).json()["status"] == "queued"


def test_search_finds_the_sentence_first(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    document = uploaded(client, owner, workspace_id, filename="policies.txt")
    insert_chunks(database_url, workspace_id, document["id"], [*OTHER_SENTENCES, REFUND_SENTENCE])
    found = client.post(
        f"/workspaces/{workspace_id}/knowledge/search",
        json={"query": REFUND_SENTENCE, "top_k": 3},
        headers=owner.headers,
    )
    assert found.status_code == 200, found.text
    first = found.json()["items"][0]
    assert (first["text"], first["document_id"], first["filename"], first["index"], first["page"]) == (
        REFUND_SENTENCE,
        document["id"],
        "policies.txt",
        3,
        1,
    )
    assert first["score"] > 0.99
    assert len(found.json()["items"]) == 3


def test_strangers_get_404_and_viewers_403(client: httpx.Client, owner: AppUser, database_url: str) -> None:
    workspace_id = personal_workspace(database_url, owner)
    document = uploaded(client, owner, workspace_id)
    insert_chunks(database_url, workspace_id, document["id"], [REFUND_SENTENCE])
    stranger, viewer = create_user(database_url), create_user(database_url)
    other_workspace = personal_workspace(database_url, viewer)
    add_member(database_url, workspace_id, viewer, "viewer")
    doc = f"/documents/{document['id']}"
    ws = f"/workspaces/{workspace_id}"
    body = {"filename": "a.txt", "media_type": "text/plain", "size": 3}

    for method, path, json_body in (
        ("GET", doc, None),
        ("PATCH", doc, {"tags": ["x"]}),
        ("DELETE", doc, None),
        ("POST", f"{doc}/reprocess", None),
        ("GET", f"{doc}/download", None),
        ("GET", f"{doc}/chunks", None),
        ("GET", f"{ws}/documents", None),
        ("POST", f"{ws}/documents", body),
        ("POST", f"{ws}/knowledge/search", {"query": "refunds"}),
        ("POST", f"{ws}/documents/bulk-delete", {"ids": [document["id"]]}),
        ("POST", f"{ws}/documents/bulk", {"documents": [body]}),
        ("POST", f"{ws}/documents/bulk-reprocess", None),
    ):
        answer = client.request(method, path, json=json_body, headers=stranger.headers, follow_redirects=False)
        assert answer.status_code == 404, (method, path, answer.text)

    # Their own workspace's search finds nothing of it, and the other's document is not theirs to delete.
    own = client.post(
        f"/workspaces/{personal_workspace(database_url, stranger)}/knowledge/search",
        json={"query": REFUND_SENTENCE},
        headers=stranger.headers,
    )
    assert own.status_code == 200 and own.json() == {"items": []}
    assert (
        client.post(
            f"/workspaces/{other_workspace}/documents/bulk-delete",
            json={"ids": [document["id"]]},
            headers=viewer.headers,
        ).status_code
        == 204
    )
    assert client.get(doc, headers=viewer.headers).status_code == 200
    assert (
        client.post(f"{ws}/knowledge/search", json={"query": "refunds"}, headers=viewer.headers).status_code == 200
    )
    for method, path, json_body in (
        ("PATCH", doc, {"tags": ["x"]}),
        ("DELETE", doc, None),
        ("POST", f"{doc}/reprocess", None),
        ("POST", f"{ws}/documents", body),
        ("POST", f"{ws}/documents/bulk-delete", {"ids": [document["id"]]}),
        ("POST", f"{ws}/documents/bulk-reprocess", None),
        ("POST", f"{ws}/documents/bulk", {"documents": [body]}),
    ):
        answer = client.request(method, path, json=json_body, headers=viewer.headers)
        assert answer.status_code == 403, (method, path, answer.text)
    assert chunk_count(database_url, document["id"]) == 1


def test_plan_limits_are_402_and_bulk_is_all_or_nothing(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    url = f"/workspaces/{workspace_id}/documents"
    nine = [{"filename": f"{i}.txt", "media_type": "text/plain", "size": 10} for i in range(9)]
    assert client.post(f"{url}/bulk", json={"documents": nine}, headers=owner.headers).status_code == 201
    two = [{"filename": f"x{i}.txt", "media_type": "text/plain", "size": 10} for i in range(2)]
    refused = client.post(f"{url}/bulk", json={"documents": two}, headers=owner.headers)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "PLAN_LIMIT"
    assert refused.json()["error"]["details"] == {"limit": 10, "used": 9, "tier": "free"}
    assert client.get(url, headers=owner.headers).json()["quota"]["count"] == 9

    too_big = {"filename": "big.pdf", "media_type": "application/pdf", "size": 20 * 1024 * 1024}
    bytes_refused = client.post(url, json=too_big, headers=owner.headers)
    assert bytes_refused.status_code == 402
    assert bytes_refused.json()["error"]["details"] == {"limit": 20 * 1024 * 1024, "used": 90, "tier": "free"}
    assert client.post(url, json=nine[0], headers=owner.headers).status_code == 201
    assert client.post(url, json=nine[0], headers=owner.headers).status_code == 402


def test_a_document_being_processed_is_not_queued_again(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    document = uploaded(client, owner, workspace_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.documents set status = 'processing', processing_started_at = now(), chunks_total = 4,"
            " chunks_done = 2 where id = %s",
            (document["id"],),
        )
    answer = client.post(f"/documents/{document['id']}/reprocess", headers=owner.headers)
    assert answer.status_code == 409, answer.text
    detail = client.get(f"/documents/{document['id']}", headers=owner.headers).json()
    assert (detail["status"], detail["progress"]) == ("processing", {"chunks_done": 2, "chunks_total": 4})


def test_downloading_a_file_not_uploaded_yet_is_404(
    client: httpx.Client, owner: AppUser, database_url: str
) -> None:
    workspace_id = personal_workspace(database_url, owner)
    started = start(client, owner, workspace_id)
    answer = client.get(f"/documents/{started['id']}/download", headers=owner.headers, follow_redirects=False)
    assert answer.status_code == 404
    assert "not been uploaded" in answer.json()["error"]["message"]
