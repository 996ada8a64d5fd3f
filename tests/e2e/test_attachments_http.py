"""Attachments over HTTP through the local server and the session's local S3 (moto's server with S3's POST
policy checks, as under `make dev`): the presigned upload, the record, the content redirect, who may see
what, and the files' end with their conversation or account."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from local.png import solid_png
from local.s3_server import LocalS3
from oneai.conversations import service
from oneai.conversations.models import NewMessage
from oneai.db import attachments as attachments_repo
from oneai.db.connection import Database
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_BUCKET

pytestmark = pytest.mark.e2e
MODEL = "openai/gpt-4o-mini"
PICTURE = solid_png(3, 2, (200, 30, 30))


@pytest.fixture
def client(local_server: Any) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


@pytest.fixture
def bob(database_url: str) -> AppUser:
    return create_user(database_url)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    return dict(body["error"])


def start_upload(
    client: httpx.Client, user: AppUser, *, size: int, media_type: str = "image/png", filename: str = "red.png"
) -> dict[str, Any]:
    response = client.post(
        "/attachments", json={"filename": filename, "media_type": media_type, "size": size}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def post_to_s3(
    upload: dict[str, Any], data: bytes, content_type: str = "image/png", **field_changes: str
) -> httpx.Response:
    """What the browser does: the signed fields, then the file, as multipart/form-data straight to S3."""
    fields = {**upload["upload"]["fields"], **field_changes}
    return httpx.post(
        upload["upload"]["url"], data=fields, files={"file": ("picture", data, content_type)}, timeout=10
    )


def uploaded(client: httpx.Client, user: AppUser, data: bytes = PICTURE) -> dict[str, Any]:
    started = start_upload(client, user, size=len(data))
    assert post_to_s3(started, data).status_code == 204
    assert client.get(f"/attachments/{started['id']}", headers=user.headers).status_code == 200
    return started


def object_exists(local_s3: LocalS3, key: str) -> bool:
    listed = local_s3.client().list_objects_v2(Bucket=E2E_BUCKET, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def follow(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The content route's redirect, then the presigned S3 GET it points at (no auth header there)."""
    redirect = client.get(path, headers=headers or {}, follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    assert redirect.headers["cache-control"] == "private, no-store"
    return httpx.get(redirect.headers["location"], timeout=10)


def test_an_image_uploads_through_the_presigned_post_and_is_served_through_a_short_lived_link(
    client: httpx.Client, alice: AppUser, local_server: Any
) -> None:
    # GIVEN an upload started for a PNG
    started = start_upload(client, alice, size=len(PICTURE))
    assert set(started) == {"id", "url", "upload", "expires_at"}
    assert started["url"] == f"{local_server.base_url}/attachments/{started['id']}/content"
    assert started["expires_at"].endswith("Z")
    fields = started["upload"]["fields"]
    assert fields["key"] == f"users/{alice.id}/{started['id']}" and fields["Content-Type"] == "image/png"
    # THEN until the file is in S3 the attachment does not exist
    assert client.get(f"/attachments/{started['id']}", headers=alice.headers).status_code == 404
    assert client.get(f"/attachments/{started['id']}/content", headers=alice.headers).status_code == 404

    # WHEN the browser posts the file to S3
    assert post_to_s3(started, PICTURE).status_code == 204

    # THEN it is an attachment, and its content link serves the very bytes with their type
    got = client.get(f"/attachments/{started['id']}", headers=alice.headers)
    assert got.status_code == 200
    assert got.json() | {"created_at": None} == {
        "id": started["id"], "filename": "red.png", "media_type": "image/png", "size": len(PICTURE),
        "url": started["url"], "created_at": None,
    }  # fmt: skip
    assert got.json()["created_at"].endswith("Z")
    content = follow(client, f"/attachments/{started['id']}/content", alice.headers)
    assert content.status_code == 200
    assert content.content == PICTURE and content.headers["content-type"] == "image/png"


def test_s3_refuses_a_file_bigger_than_declared_or_of_another_type_and_nothing_becomes_an_attachment(
    client: httpx.Client, alice: AppUser
) -> None:
    started = start_upload(client, alice, size=len(PICTURE))
    # a bigger file than the size the upload was signed for
    too_big = post_to_s3(started, PICTURE + b"\x00" * 64)
    assert too_big.status_code == 400 and b"EntityTooLarge" in too_big.content
    # the same size, but claiming another type than signed
    wrong_type = post_to_s3(started, PICTURE, content_type="text/html", **{"Content-Type": "text/html"})
    assert wrong_type.status_code == 403 and b"AccessDenied" in wrong_type.content
    # a form whose signature does not match (the key changed)
    other_key = post_to_s3(started, PICTURE, key=f"users/{uuid.uuid4()}/{started['id']}")
    assert other_key.status_code == 403
    assert client.get(f"/attachments/{started['id']}", headers=alice.headers).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filename": "page.html", "media_type": "text/html", "size": 10}, "media_type"),
        ({"filename": "x.svg", "media_type": "image/svg+xml", "size": 10}, "media_type"),
        ({"filename": "huge.png", "media_type": "image/png", "size": 10 * 1024 * 1024 + 1}, "size"),
        ({"filename": "empty.png", "media_type": "image/png", "size": 0}, "size"),
        ({"filename": "", "media_type": "image/png", "size": 10}, "filename"),
        ({"filename": "a.png", "media_type": "image/png"}, "size"),
    ],
)
def test_an_upload_that_cannot_be_an_image_attachment_is_refused_before_s3(
    client: httpx.Client, alice: AppUser, body: dict[str, Any], field: str
) -> None:
    response = client.post("/attachments", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in json.dumps(error["details"])


def test_someone_elses_attachment_is_not_found_and_anonymous_callers_are_refused(
    client: httpx.Client, alice: AppUser, bob: AppUser
) -> None:
    started = uploaded(client, alice)
    for path in (f"/attachments/{started['id']}", f"/attachments/{started['id']}/content"):
        assert client.get(path, headers=bob.headers).status_code == 404
        assert client.get(path).status_code == 401
    assert client.get(f"/attachments/{uuid.uuid4()}", headers=alice.headers).status_code == 404
    assert (
        client.post("/attachments", json={"filename": "a.png", "media_type": "image/png", "size": 1}).status_code
        == 401
    )


def attach(db: Database, user: AppUser, attachment_id: str) -> tuple[str, str]:
    """A conversation whose first message carries the attachment (what a chat turn with it writes)."""
    with db.user_transaction(user.principal) as conn:
        conversation = service.create_conversation(conn, user.id, service.ConversationCreate(title="Pictures"))
        message = service.append_message(
            conn, user.id, conversation.id, NewMessage(role="user", content="What is this?", model_id=MODEL)
        )
        assert (
            attachments_repo.attach_to_message(
                conn, [uuid.UUID(attachment_id)], conversation_id=conversation.id, message_id=message.id
            )
            == 1
        )
    return str(conversation.id), str(message.id)


def test_a_messages_attachments_are_listed_exported_shared_while_the_link_lives_and_deleted_with_it(
    client: httpx.Client, alice: AppUser, bob: AppUser, db: Database, local_s3: LocalS3
) -> None:
    # GIVEN a message that carries an uploaded picture
    started = uploaded(client, alice)
    cid, message_id = attach(db, alice, started["id"])
    key = f"users/{alice.id}/{started['id']}"
    expected = [{"id": started["id"], "media_type": "image/png", "url": started["url"], "size": len(PICTURE)}]

    # THEN every message route lists it
    (message,) = client.get(f"/conversations/{cid}", headers=alice.headers).json()["messages"]
    assert message["id"] == message_id and message["attachments"] == expected
    assert (
        client.get(f"/conversations/{cid}/messages", headers=alice.headers).json()["items"][0]["attachments"]
        == expected
    )
    revisions = client.get(f"/conversations/{cid}/messages/{message_id}/revisions", headers=alice.headers).json()
    assert revisions["items"][0]["attachments"] == expected
    # the exports list it (markdown: an image link)
    markdown = client.get(
        f"/conversations/{cid}/export", params={"format": "markdown"}, headers=alice.headers
    ).text
    assert f"![image/png attachment]({started['url']})" in markdown
    exported = client.get(f"/conversations/{cid}/export", headers=alice.headers).json()
    assert exported["messages"][0]["attachments"] == expected

    # a share link lists it under the link's own address, which serves the file without a token
    token = client.post(f"/conversations/{cid}/share", headers=alice.headers).json()["token"]
    (shared_message,) = client.get(f"/shared/{token}").json()["messages"]
    (shared_attachment,) = shared_message["attachments"]
    assert shared_attachment["id"] == started["id"] and shared_attachment["url"].endswith(
        f"/shared/{token}/attachments/{started['id']}"
    )
    assert follow(client, f"/shared/{token}/attachments/{started['id']}").content == PICTURE
    # ... not another attachment of hers through that link, and nothing once the link is revoked
    other = uploaded(client, alice)
    assert client.get(f"/shared/{token}/attachments/{other['id']}").status_code == 404
    assert client.delete(f"/conversations/{cid}/share", headers=alice.headers).status_code == 204
    assert client.get(f"/shared/{token}/attachments/{started['id']}").status_code == 404

    # bob sees none of it
    assert client.get(f"/conversations/{cid}", headers=bob.headers).status_code == 404

    # WHEN the conversation is deleted THEN its file is gone from S3 and the attachment with it
    assert object_exists(local_s3, key)
    assert client.delete(f"/conversations/{cid}", headers=alice.headers).status_code == 204
    assert not object_exists(local_s3, key)
    assert client.get(f"/attachments/{started['id']}", headers=alice.headers).status_code == 404
    # the attachment never attached to that conversation stays
    assert client.get(f"/attachments/{other['id']}", headers=alice.headers).status_code == 200


def test_erasing_the_account_deletes_every_file_of_the_user_and_the_export_lists_them_before(
    client: httpx.Client, alice: AppUser, bob: AppUser, db: Database, local_s3: LocalS3
) -> None:
    mine = [uploaded(client, alice), uploaded(client, alice)]
    attach(db, alice, mine[0]["id"])
    never_uploaded = start_upload(client, alice, size=10)
    theirs = uploaded(client, bob)

    document = client.get("/user/export", headers=alice.headers).json()
    listed = {a["id"]: a["status"] for a in document["attachments"]}
    assert listed == {mine[0]["id"]: "uploaded", mine[1]["id"]: "uploaded", never_uploaded["id"]: "pending"}

    assert client.delete("/user", headers=alice.headers).status_code == 204

    assert local_s3.client().list_objects_v2(Bucket=E2E_BUCKET, Prefix=f"users/{alice.id}/").get("KeyCount") == 0
    assert object_exists(local_s3, f"users/{bob.id}/{theirs['id']}")
    assert client.get(f"/attachments/{theirs['id']}", headers=bob.headers).status_code == 200
