"""`POST /chat/stream` read by the real client: the Vercel AI SDK (`ai` from npm, pinned by
tests/node/package-lock.json) under node, through `DefaultChatTransport` and `readUIMessageStream`
(tests/node/read_chat_stream.mjs). The SDK parses every chunk with its own schema, so these tests fail if the
server sends a part the SDK rejects or cannot apply, and they check what the SDK rebuilds from the stream."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from local.fake_openrouter import FakeOpenRouter, MidStreamError, Reply
from tests.conftest import REPO_ROOT, AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, LocalServer

pytestmark = pytest.mark.e2e

NODE_CLIENT_DIR = REPO_ROOT / "tests" / "node"
SCRIPT = NODE_CLIENT_DIR / "read_chat_stream.mjs"
NODE_TIMEOUT_SECONDS = 60
STDERR_SHOWN = 4000  # a rejected chunk's validation error lists every chunk schema: show its start
USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9, "cost": 0.0001}


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the pinned AI SDK installed (`make pytest` installs it with `npm ci`)."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not on PATH: the AI SDK client check needs Node.js (20 or later)")
    if not (NODE_CLIENT_DIR / "node_modules" / "ai" / "package.json").is_file():
        pytest.fail(
            "the AI SDK client is not installed in tests/node/node_modules: run `make pytest` (or "
            "`npm ci --prefix tests/node`), which installs the versions pinned in tests/node/package-lock.json"
        )
    return binary


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def read_with_the_sdk(
    node: str,
    server: LocalServer,
    user: AppUser,
    text: str,
    *,
    model: str = CHAT_MODEL,
    chat_id: str | None = None,
) -> dict[str, Any]:
    """Run the SDK client on one message; its one JSON line of output, or a failure with its stderr.
    `model="-"` leaves the transport at its defaults (no model sent); `chat_id="generate"` has the SDK
    make the chat id (`generateId()`)."""
    completed = subprocess.run(
        [node, str(SCRIPT), server.base_url, user.token, model, text, *([chat_id] if chat_id else [])],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, (
        f"the AI SDK client exited with {completed.returncode}\n--- stderr ---\n{completed.stderr[:STDERR_SHOWN]}"
        f"\n--- stdout ---\n{completed.stdout}"
    )
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def parts_of(result: dict[str, Any], part_type: str) -> list[dict[str, Any]]:
    return [part for part in result["dataParts"] if part["type"] == part_type]


def saved_conversation(server: LocalServer, user: AppUser, conversation_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/conversations/{conversation_id}", headers=user.headers, timeout=30)
    assert response.status_code == 200
    conversation: dict[str, Any] = response.json()
    return conversation


def test_the_ai_sdk_rebuilds_the_reply_and_its_data_parts(
    node: str, local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN an upstream that answers in three pieces, with its usage
    openrouter.script(Reply(chunks=["Hello", " from", " the SDK"], usage=USAGE), model=CHAT_MODEL)
    # WHEN the AI SDK client sends a message and reads the reply
    result = read_with_the_sdk(node, local_server, user, "Hi from the AI SDK")
    # THEN it accepted every chunk and rebuilt the assistant's text
    assert (result["role"], result["text"], result["error"]) == ("assistant", "Hello from the SDK", None)
    types = result["chunkTypes"]
    assert types[0] == "start" and types[-1] == "finish"
    assert {"text-start", "text-delta", "text-end", "data-conversation", "data-usage"} <= set(types)
    # AND kept the conversation parts: the first names the conversation, the last carries its title
    conversations = parts_of(result, "data-conversation")
    assert conversations, result
    first, last = conversations[0]["data"], conversations[-1]["data"]
    assert {"id", "user_message_id"} <= set(first) and first["id"] and first["user_message_id"]
    assert all(part["data"]["id"] == first["id"] for part in conversations)
    assert isinstance(last["title"], str) and last["title"]
    # AND the usage part: the model used, its tokens and the caller's quota after this message
    [usage_part] = parts_of(result, "data-usage")
    usage = usage_part["data"]
    assert usage["model"] == CHAT_MODEL
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (5, 4)
    quota = usage["quota"]
    assert (quota["used"], quota["limit"], quota["remaining"]) == (1, 100, 99)
    assert isinstance(quota["resets_at"], str) and quota["resets_at"]
    # AND the message id the SDK gave the reply is the saved assistant message's id
    saved = saved_conversation(local_server, user, first["id"])
    assert saved["title"] == last["title"]
    assert [(m["role"], m["content"]) for m in saved["messages"]] == [
        ("user", "Hi from the AI SDK"),
        ("assistant", "Hello from the SDK"),
    ]
    assert saved["messages"][0]["id"] == first["user_message_id"]
    assert saved["messages"][1]["id"] == result["messageId"]


def test_the_ai_sdk_shows_a_mid_stream_error_after_the_partial_reply(
    node: str, local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN an upstream that fails after the first piece of text
    openrouter.script(MidStreamError(after_chunks=["Part"], message="provider died"), model=CHAT_MODEL)
    # WHEN the AI SDK client reads the reply
    result = read_with_the_sdk(node, local_server, user, "Tell me everything")
    # THEN the user sees the partial text and the error, which says the partial reply was kept
    assert result["text"] == "Part"
    assert result["error"] is not None and "partial reply was kept" in result["error"]
    assert "provider died" not in result["error"]  # the provider's message stays on the server
    types = result["chunkTypes"]
    assert types[-1] == "error" and "finish" not in types
    # AND the partial reply is saved under the id the SDK gave it, marked incomplete
    conversation_id = parts_of(result, "data-conversation")[0]["data"]["id"]
    saved = saved_conversation(local_server, user, conversation_id)
    assert [(m["id"], m["content"], m["status"]) for m in saved["messages"][1:]] == [
        (result["messageId"], "Part", "incomplete")
    ]


def test_the_ai_sdk_at_its_defaults_chats_without_a_model_under_its_own_chat_id(
    node: str, local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN the transport left at its defaults (no body, so no model) and a chat id made by the SDK
    # (the first turn's title is asked of the same default model, concurrently: both get the same reply)
    first_turn = Reply(chunks=["First answer"], usage=USAGE)
    openrouter.script(first_turn, first_turn, Reply(chunks=["Second answer"]))
    first = read_with_the_sdk(node, local_server, user, "Hello", model="-", chat_id="generate")
    chat_id = first["chatId"]
    assert isinstance(chat_id, str) and chat_id
    with pytest.raises(ValueError):
        uuid.UUID(chat_id)  # the SDK's own ids are not UUIDs
    # THEN the plan's default model answered, and the cost is a decimal string
    [usage_part] = parts_of(first, "data-usage")
    assert usage_part["data"]["model"] == "openai/gpt-4o-mini"
    assert usage_part["data"]["cost"] == "0.0001"
    # WHEN the same chat sends again under the same SDK chat id
    second = read_with_the_sdk(node, local_server, user, "And again", model="-", chat_id=chat_id)
    assert second["text"] == "Second answer"
    # THEN both turns are one conversation of the user's
    conversation_id = parts_of(first, "data-conversation")[0]["data"]["id"]
    assert parts_of(second, "data-conversation")[0]["data"]["id"] == conversation_id
    saved = saved_conversation(local_server, user, conversation_id)
    assert [(m["role"], m["content"]) for m in saved["messages"]] == [
        ("user", "Hello"),
        ("assistant", "First answer"),
        ("user", "And again"),
        ("assistant", "Second answer"),
    ]
    # AND another user's SDK with the same chat id talks in a conversation of their own
    other = create_user(database_url)
    openrouter.script(Reply(chunks=["Theirs"]))
    theirs = read_with_the_sdk(node, local_server, other, "Mine", model="-", chat_id=chat_id)
    assert parts_of(theirs, "data-conversation")[0]["data"]["id"] != conversation_id


def test_the_ai_sdk_puts_an_image_the_model_made_into_the_message_parts(
    node: str, local_server: LocalServer, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    # GIVEN the image model (the stand-in makes a PNG when asked for images)
    image_model = "google/gemini-2.5-flash-image-preview"
    # WHEN the AI SDK client asks it for a picture
    result = read_with_the_sdk(node, local_server, user, "Draw a lighthouse", model=image_model)
    # THEN the SDK accepted the `file` part and put it into the assistant message's parts
    assert result["error"] is None and "file" in result["chunkTypes"]
    (file_part,) = result["fileParts"]
    assert file_part["mediaType"] == "image/png"
    # AND its url is the reply's attachment, which serves the picture
    conversation_id = parts_of(result, "data-conversation")[0]["data"]["id"]
    reply = saved_conversation(local_server, user, conversation_id)["messages"][1]
    assert [a["url"] for a in reply["attachments"]] == [file_part["url"]]
    redirect = httpx.get(file_part["url"], headers=user.headers, timeout=30, follow_redirects=False)
    assert httpx.get(redirect.headers["location"], timeout=30).content.startswith(b"\x89PNG\r\n\x1a\n")
