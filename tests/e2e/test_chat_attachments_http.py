"""Images in chat turns over HTTP, through the local server, the session's local S3 and the stand-in
OpenRouter: an uploaded picture reaches the model as an image part, a text-only model refuses it before
anything is reserved, an image model's pictures are stored, streamed as `file` parts and kept on the reply,
and every bad input is a clear error that reserves nothing."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_openrouter import Drop, FakeOpenRouter, Reply, generated_image
from local.png import png_size, solid_png
from local.s3_server import LocalS3
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, E2E_BUCKET, LocalServer
from tests.e2e.test_attachments_http import PICTURE, object_exists, post_to_s3, start_upload, uploaded
from tests.e2e.test_chat_stream import messages_of, quota_used
from tests.sse_support import aiter_events, events_of, parts_came, read_until

pytestmark = pytest.mark.e2e
IMAGE_MODEL = "google/gemini-2.5-flash-image-preview"
TEXT_ONLY_MODEL = "meta-llama/llama-3.3-70b-instruct"


@pytest.fixture
def client(local_server: LocalServer) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


@pytest.fixture
def bob(database_url: str) -> AppUser:
    return create_user(database_url)


def last_user_content(request: Any) -> Any:
    return [m for m in request.body["messages"] if m["role"] == "user"][-1]["content"]


def nothing_happened(database_url: str, user: AppUser, openrouter: FakeOpenRouter) -> None:
    """Nothing reserved, nothing written, nothing asked of the model."""
    assert quota_used(database_url, user) == 0
    assert quota_used(database_url, user, "image_generation") == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "select count(*) from public.chat_messages where user_id = %s", (user.id,)
        ).fetchone() == (0,)
        assert conn.execute(
            "select count(*) from public.conversations where user_id = %s", (user.id,)
        ).fetchone() == (0,)
    assert openrouter.chat_requests == []


def test_an_uploaded_image_reaches_the_model_as_an_image_part_and_stays_on_the_message(
    client: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str, local_s3: LocalS3
) -> None:
    # GIVEN a picture uploaded through the presigned POST
    picture = uploaded(client, alice)
    # WHEN the user sends a message with it (native body), to a model that reads images
    response = client.post(
        "/chat/stream",
        json={"model": CHAT_MODEL, "content": "What is in this picture?", "attachments": [picture["id"]]},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    events = events_of(response.text)
    assert events[-2]["type"] == "finish"
    # THEN the model got the text and the picture as an image part whose link serves the very bytes
    (request,) = [r for r in openrouter.chat_requests if r.body["model"] == CHAT_MODEL]
    text_part, image_part = last_user_content(request)
    assert text_part == {"type": "text", "text": "What is in this picture?"}
    assert image_part["type"] == "image_url"
    assert httpx.get(image_part["image_url"]["url"], timeout=10).content == PICTURE
    # AND the offline stand-in describes what it received
    reply = "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
    assert f"image/png of 3×2 pixels ({len(PICTURE)} bytes)" in reply
    # AND the user message lists the attachment; one unit of the text model was counted
    saved = messages_of(client, alice, events[1]["data"]["id"])
    assert [a["id"] for a in saved[0]["attachments"]] == [picture["id"]] and saved[1]["attachments"] == []
    assert quota_used(database_url, alice) == 1
    # AND the object is kept past the bucket's expiry of unattached uploads
    tags = local_s3.client().get_object_tagging(Bucket=E2E_BUCKET, Key=f"users/{alice.id}/{picture['id']}")
    assert tags["TagSet"] == [{"Key": "oneai-attached", "Value": "true"}]


def test_the_ai_sdk_body_takes_file_parts_attachment_urls_and_data_urls(
    client: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter
) -> None:
    picture = uploaded(client, alice)
    inline = solid_png(5, 7, (0, 128, 255))
    body = {
        "id": f"chat-{uuid.uuid4().hex[:8]}",
        "model": CHAT_MODEL,
        "trigger": "submit-message",
        "messages": [
            {
                "id": "m1",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "Compare these two"},
                    {"type": "file", "mediaType": "image/png", "url": picture["url"]},
                    {
                        "type": "file",
                        "mediaType": "image/png",
                        "url": "data:image/png;base64," + base64.b64encode(inline).decode(),
                    },
                ],
            }
        ],
    }
    response = client.post("/chat/stream", json=body, headers=alice.headers)
    assert response.status_code == 200, response.text
    (request,) = [r for r in openrouter.chat_requests if r.body["model"] == CHAT_MODEL]
    images = [p for p in last_user_content(request) if p["type"] == "image_url"]
    assert [httpx.get(p["image_url"]["url"], timeout=10).content for p in images] == [PICTURE, inline]
    # the data: URL became an attachment of the message
    events = events_of(response.text)
    (user_message, _) = messages_of(client, alice, events[1]["data"]["id"])
    first, second = user_message["attachments"]
    assert first["id"] == picture["id"] and (second["media_type"], second["size"]) == ("image/png", len(inline))
    stored = client.get(second["url"], headers=alice.headers, follow_redirects=False)
    assert httpx.get(stored.headers["location"], timeout=10).content == inline


def test_a_model_that_cannot_read_images_refuses_them_before_anything_is_reserved(
    client: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    picture = uploaded(client, alice)
    response = client.post(
        "/chat/stream",
        json={"model": TEXT_ONLY_MODEL, "content": "Describe it", "attachments": [picture["id"]]},
        headers=alice.headers,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in error["details"]["errors"]] == ["attachments"]
    nothing_happened(database_url, alice, openrouter)


def test_bad_attachments_are_clear_errors_that_reserve_nothing(
    client: httpx.Client, alice: AppUser, bob: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    bobs = uploaded(client, bob)
    never_uploaded = start_upload(client, alice, size=len(PICTURE))
    refused = start_upload(client, alice, size=len(PICTURE))
    assert post_to_s3(refused, PICTURE + b"oversize").status_code == 400  # S3 refused it

    def native(ids: list[str]) -> httpx.Response:
        body = {"model": CHAT_MODEL, "content": "Look", "attachments": ids}
        return client.post("/chat/stream", json=body, headers=alice.headers)

    def ai_sdk(url: str, media_type: str = "image/png") -> httpx.Response:
        parts = [{"type": "text", "text": "Look"}, {"type": "file", "mediaType": media_type, "url": url}]
        body = {
            "model": CHAT_MODEL,
            "messages": [{"id": "m", "role": "user", "parts": parts}],
            "trigger": "submit-message",
        }
        return client.post("/chat/stream", json=body, headers=alice.headers)

    # someone else's attachment, by id or by url: not found
    assert native([bobs["id"]]).status_code == 404
    assert ai_sdk(bobs["url"]).status_code == 404
    assert native([str(uuid.uuid4())]).status_code == 404
    # an upload never made, or refused by S3: a conflict, saying so
    for started in (never_uploaded, refused):
        answer = native([started["id"]])
        assert answer.status_code == 409 and "never uploaded" in answer.json()["error"]["message"]
    # data: URLs that are not an accepted image
    text = "data:text/plain;base64," + base64.b64encode(b"hello").decode()
    fake_png = "data:image/png;base64," + base64.b64encode(b"<html>not a picture</html>").decode()
    for url, media_type in (
        (text, "text/plain"),
        (fake_png, "image/png"),
        ("https://example.com/cat.png", "image/png"),
    ):
        answer = ai_sdk(url, media_type)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"]["errors"][0]["field"] == "attachments"
    # not an id at all
    assert native(["not-a-uuid"]).status_code == 422
    nothing_happened(database_url, alice, openrouter)


def test_an_image_model_streams_its_picture_as_a_file_part_and_keeps_it_on_the_reply(
    client: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str, local_s3: LocalS3
) -> None:
    # WHEN the user asks the image model (the stand-in makes a PNG when asked for images)
    response = client.post(
        "/chat/stream", json={"model": IMAGE_MODEL, "content": "Draw a red circle"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    (request,) = [r for r in openrouter.chat_requests if r.body["model"] == IMAGE_MODEL]
    assert request.body["modalities"] == ["image", "text"]
    events = [e for e in events_of(response.text) if isinstance(e, dict)]
    types = [e["type"] for e in events]
    # THEN the picture is a file part before `finish`, whose url serves the PNG the model made
    (file_part,) = [e for e in events if e["type"] == "file"]
    assert types.index("file") < types.index("finish")
    assert set(file_part) == {"type", "mediaType", "url"} and file_part["mediaType"] == "image/png"
    redirect = client.get(file_part["url"], headers=alice.headers, follow_redirects=False)
    png = httpx.get(redirect.headers["location"], timeout=10).content
    assert png == base64.b64decode(generated_image("Draw a red circle").partition(",")[2])
    assert png_size(png) == (64, 64)
    # AND the reply keeps its text and its picture; one image_generation unit was counted
    conversation_id = events[1]["data"]["id"]
    reply = messages_of(client, alice, conversation_id)[1]
    assert reply["content"].startswith("[offline]") and [a["url"] for a in reply["attachments"]] == [
        file_part["url"]
    ]
    assert quota_used(database_url, alice, "image_generation") == 1 and quota_used(database_url, alice) == 0
    # AND deleting the conversation deletes the picture
    key = f"users/{alice.id}/{reply['attachments'][0]['id']}"
    assert object_exists(local_s3, key)
    assert client.delete(f"/conversations/{conversation_id}", headers=alice.headers).status_code == 204
    assert not object_exists(local_s3, key)
    assert client.get(file_part["url"], headers=alice.headers).status_code == 404


def test_a_reply_cut_after_its_picture_keeps_the_text_and_the_picture(
    client: httpx.Client, alice: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    picture = generated_image("cut")
    openrouter.script(Drop(after_chunks=["Here it ", "is"], after_images=[picture]), model=IMAGE_MODEL)
    response = client.post("/chat/stream", json={"model": IMAGE_MODEL, "content": "Draw"}, headers=alice.headers)
    assert response.status_code == 200
    events = [e for e in events_of(response.text) if isinstance(e, dict)]
    assert [e["type"] for e in events if e["type"] in ("file", "error")] == ["file", "error"]
    reply = messages_of(client, alice, events[1]["data"]["id"])[1]
    assert (reply["content"], reply["status"], len(reply["attachments"])) == ("Here it is", "incomplete", 1)
    redirect = client.get(reply["attachments"][0]["url"], headers=alice.headers, follow_redirects=False)
    assert httpx.get(redirect.headers["location"], timeout=10).content == base64.b64decode(
        picture.partition(",")[2]
    )
    assert quota_used(database_url, alice, "image_generation") == 1


def test_the_resume_address_replays_the_pictures_of_a_reply_the_client_left(
    local_server: LocalServer, alice: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN an image model whose three pictures come half a second apart
    pictures = [generated_image(f"picture {n}") for n in range(3)]
    openrouter.script(Reply(chunks=["Here ", "they are"], delay=0.5, images=pictures), model=IMAGE_MODEL)

    async def scenario() -> tuple[list[Any], httpx.Response]:
        async with httpx.AsyncClient(base_url=local_server.base_url, timeout=30) as http:
            # WHEN the client reads up to the first picture and goes away
            async with http.stream(
                "POST", "/chat/stream", json={"model": IMAGE_MODEL, "content": "Draw"}, headers=alice.headers
            ) as response:
                assert response.status_code == 200
                received = await read_until(aiter_events(response), parts_came("file"))
            first = [e for e in received if isinstance(e, dict)]
            # AND a reload asks the resume address while the other pictures are still coming
            resumed = await http.get(f"/chat/stream/{first[1]['data']['id']}/stream", headers=alice.headers)
            return first, resumed

    first, resumed = asyncio.run(scenario())
    (seen,) = [e for e in first if e["type"] == "file"]
    # THEN the resumed stream replays the picture the client saw, then the others, then finishes
    assert resumed.status_code == 200
    events = [e for e in events_of(resumed.text) if isinstance(e, dict)]
    files = [e for e in events if e["type"] == "file"]
    assert len(files) == 3 and files[0] == seen and events[-1]["type"] == "finish"
    # AND each replayed part serves the picture the model made, and the reply keeps all three
    for part, picture in zip(files, pictures, strict=True):
        redirect = httpx.get(
            f"{local_server.base_url}{part['url']}" if part["url"].startswith("/") else part["url"],
            headers=alice.headers,
            follow_redirects=False,
        )
        assert httpx.get(redirect.headers["location"], timeout=10).content == base64.b64decode(
            picture.partition(",")[2]
        )
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        reply = messages_of(http, alice, first[1]["data"]["id"])[1]
    assert sorted(a["url"] for a in reply["attachments"]) == sorted(f["url"] for f in files)
    assert quota_used(database_url, alice, "image_generation") == 1
