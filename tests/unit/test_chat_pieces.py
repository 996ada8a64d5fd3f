"""The chat turn's pure parts: stream part encoding, request bodies, context trimming, the offered
models, titles. No network, no database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from oneai.chat import parts
from oneai.chat.context import build_context, estimate_tokens
from oneai.chat.offered_models import listings, offered_model
from oneai.chat.relay import clean_title
from oneai.chat.requests import parse_chat_body
from oneai.conversations.models import Message
from oneai.errors import ForbiddenError, PayloadTooLargeError, ValidationError
from oneai.openrouter.catalog import OpenRouterModel

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def decoded(event: bytes) -> dict[str, object]:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    value = json.loads(event[len(b"data: ") : -2])
    assert isinstance(value, dict)
    return value


def test_every_part_carries_exactly_the_keys_of_its_type() -> None:
    # The AI SDK client rejects unknown keys in the parts it knows.
    assert decoded(parts.start("m1")) == {"type": "start", "messageId": "m1"}
    assert decoded(parts.text_start()) == {"type": "text-start", "id": "t0"}
    assert decoded(parts.text_delta("Hé\n")) == {"type": "text-delta", "id": "t0", "delta": "Hé\n"}
    assert decoded(parts.text_end()) == {"type": "text-end", "id": "t0"}
    assert decoded(parts.finish()) == {"type": "finish"}
    assert decoded(parts.error("boom")) == {"type": "error", "errorText": "boom"}
    assert decoded(parts.data("usage", {"a": 1})) == {"type": "data-usage", "data": {"a": 1}}
    assert decoded(parts.data("conversation", {}, part_id="conversation")) == {
        "type": "data-conversation",
        "id": "conversation",
        "data": {},
    }
    assert parts.DONE == b"data: [DONE]\n\n"
    # a delta with a newline stays one SSE event: JSON escapes it
    assert parts.text_delta("a\n\nb").count(b"\n\n") == 1


def test_the_native_body_becomes_a_turn_and_its_rules_are_422() -> None:
    turn = parse_chat_body({"model": "openai/gpt-4o-mini", "content": "Hi"})
    assert (turn.action, turn.content, turn.conversation_id) == ("send", "Hi", None)
    cid, mid = uuid.uuid4(), uuid.uuid4()
    regenerate = parse_chat_body({"model": "m/x", "action": "regenerate", "conversation_id": str(cid)})
    assert (regenerate.action, regenerate.message_id, regenerate.content) == ("regenerate", None, None)
    edit = parse_chat_body(
        {"model": "m/x", "action": "edit", "conversation_id": str(cid), "message_id": str(mid), "content": "v2"}
    )
    assert (edit.action, edit.message_id) == ("edit", mid)
    for bad in (
        {"model": "m/x", "content": "  "},
        {"model": "m/x", "action": "edit", "conversation_id": str(cid), "content": "x"},
        {"model": "m/x", "action": "regenerate"},
        {"model": "", "content": "x"},
        {"model": "m/x", "content": "x", "unknown": 1},
        ["not", "an", "object"],
    ):
        with pytest.raises(ValidationError) as raised:
            parse_chat_body(bad)
        assert raised.value.status == 422 and raised.value.details["errors"]


def test_a_message_over_the_limit_is_413_in_either_body() -> None:
    long_text = "x" * 100_001
    ai_sdk = {"messages": [{"id": "a", "role": "user", "parts": [{"type": "text", "text": long_text}]}]}
    for body in ({"model": "m/x", "content": long_text}, ai_sdk):
        with pytest.raises(PayloadTooLargeError) as raised:
            parse_chat_body(body)
        assert (raised.value.status, raised.value.code) == (413, "PAYLOAD_TOO_LARGE")
    # AND one character less is a message like any other
    assert parse_chat_body({"model": "m/x", "content": long_text[:-1]}).content == long_text[:-1]


def test_the_ai_sdk_body_takes_the_last_user_text_and_the_trigger() -> None:
    cid = uuid.uuid4()
    body = {
        "id": str(cid),
        "model": "openai/gpt-4o-mini",
        "trigger": "submit-message",
        "messages": [
            {"id": "a", "role": "user", "parts": [{"type": "text", "text": "old"}]},
            {"id": "b", "role": "assistant", "parts": [{"type": "text", "text": "reply"}]},
            {
                "id": "c",
                "role": "user",
                "parts": [
                    {"type": "step-start"},
                    {"type": "text", "text": "new "},
                    {"type": "text", "text": "question"},
                ],
            },
        ],
    }
    turn = parse_chat_body(body)
    assert (turn.action, turn.content, turn.conversation_id, turn.create_missing_conversation) == (
        "send", "new question", cid, True,
    )  # fmt: skip
    regenerate = parse_chat_body(body | {"trigger": "regenerate-message"})
    assert (regenerate.action, regenerate.content) == ("regenerate", None)
    with pytest.raises(ValidationError):
        parse_chat_body(body | {"messages": [{"id": "x", "role": "user", "parts": [{"type": "file"}]}]})


def test_the_ai_sdk_body_needs_no_model_and_takes_the_sdks_own_chat_ids() -> None:
    messages = [{"id": "a", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]
    # the AI SDK's generateId(): 16 alphanumerics, not a UUID
    turn = parse_chat_body({"id": "Xk3vQ9mZp2LwT7rB", "messages": messages})
    assert (turn.model, turn.conversation_id, turn.client_chat_id) == (None, None, "Xk3vQ9mZp2LwT7rB")
    cid = uuid.uuid4()
    by_uuid = parse_chat_body({"id": str(cid), "messages": messages})
    assert (by_uuid.conversation_id, by_uuid.client_chat_id) == (cid, None)
    for bad_id in ("", "x" * 129):
        with pytest.raises(ValidationError) as raised:
            parse_chat_body({"id": bad_id, "messages": messages})
        assert raised.value.details["errors"][0]["field"] == "id"


def message(seq: int, role: str, content: str) -> Message:
    return Message(
        id=uuid.uuid4(), conversation_id=uuid.uuid4(), role=role, content=content, model_id="m/x",
        tokens_used=None, sequence_number=seq, revision_number=0, revision_type=None, original_message_id=None,
        parent_message_id=None, is_latest=True, status="complete", created_at=NOW,
    )  # fmt: skip


def test_the_context_keeps_the_newest_messages_that_fit_the_window() -> None:
    history = [message(i, "user" if i % 2 else "assistant", f"m{i} " + "x" * 396) for i in range(1, 41)]
    # each message is ~100 tokens + overhead; a 4096 window keeps 3072 tokens for history
    kept = build_context(history, 4096)
    assert kept[-1]["content"].startswith("m40 ") and kept[0]["content"].startswith(f"m{41 - len(kept)} ")
    assert (
        sum(estimate_tokens(m["content"]) for m in kept)
        <= 3072
        < sum(estimate_tokens(m.content) for m in history[-len(kept) - 1 :])
    )
    assert [m["role"] for m in kept[-2:]] == ["user", "assistant"]  # roles travel with their text
    # everything fits a large window
    assert len(build_context(history, 200_000)) == 40


def test_a_last_message_longer_than_the_window_is_413_not_silently_cut() -> None:
    with pytest.raises(PayloadTooLargeError):
        build_context([message(1, "user", "x" * 40_000)], 8192)


def catalog_entry(model_id: str, context: int | None = 128_000, prompt: str = "0.00000015") -> OpenRouterModel:
    return OpenRouterModel.model_validate(
        {
            "id": model_id,
            "name": model_id.upper(),
            "context_length": context,
            "pricing": {"prompt": prompt, "completion": "0.0000006"},
            "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
        }
    )


def test_offered_models_map_to_a_quota_key_and_tiers() -> None:
    assert offered_model("openai/gpt-4o-mini", "free").quota_key == "small_messages"
    assert offered_model("anthropic/claude-sonnet-4", "pro").quota_key == "large_messages"
    assert offered_model("google/gemini-2.5-flash-image-preview", "free").quota_key == "image_generation"
    with pytest.raises(ForbiddenError) as forbidden:
        offered_model("anthropic/claude-sonnet-4", "free")
    assert forbidden.value.details["tiers"] == ["enterprise", "pro"]
    with pytest.raises(ValidationError):
        offered_model("acme/unknown", "enterprise")


def test_the_model_list_merges_upstream_facts_with_our_catalog() -> None:
    upstream = [
        catalog_entry("openai/gpt-4o-mini"),
        catalog_entry("anthropic/claude-sonnet-4", prompt="0.000003"),
        catalog_entry("openrouter/auto", context=None, prompt="-1"),  # not offered: not listed
    ]
    items = {i.id: i for i in listings(upstream, "free")}
    assert set(items) == {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4"}
    mini = items["openai/gpt-4o-mini"]
    assert (mini.available, mini.quota_key, mini.context_length) == (True, "small_messages", 128_000)
    assert mini.pricing.prompt == "0.00000015" and Decimal(mini.pricing.completion or "0") > 0
    assert mini.modalities == {"input": ["text", "image"], "output": ["text"]}
    assert items["anthropic/claude-sonnet-4"].available is False


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ('"Trip planning to Goa."', "Trip planning to Goa"),
        ("  **Biryani   recipes**\n", "Biryani recipes"),
        ("", None),
        ("x" * 200, "x" * 80),
    ],
)
def test_generated_titles_are_cleaned(raw: str, title: str | None) -> None:
    assert clean_title(raw) == title
