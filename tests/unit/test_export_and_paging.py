"""Export formats and cursors, without a database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from oneai.conversations.export import export_conversation
from oneai.conversations.models import ConversationWithMessages, Message
from oneai.errors import ValidationError
from oneai.pagination import Page, decode_cursor, encode_cursor, page_of

NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


def conversation(title: str | None) -> ConversationWithMessages:
    cid = uuid.uuid4()

    def message(seq: int, role: str, content: str, status: str = "complete") -> Message:
        return Message(
            id=uuid.uuid4(), conversation_id=cid, role=role, content=content, model_id="openai/gpt-4o-mini",
            tokens_used=None, sequence_number=seq, revision_number=0, revision_type=None,
            original_message_id=None, parent_message_id=None, is_latest=True, status=status, created_at=NOW,
        )  # fmt: skip

    return ConversationWithMessages(
        id=cid, title=title, created_at=NOW, updated_at=NOW, last_message_at=NOW, metadata={"tag": "x"},
        messages=[message(1, "user", "Namaste 🙏"), message(2, "assistant", "Hello!", "incomplete")],
    )  # fmt: skip


def test_json_export_carries_metadata_and_every_message() -> None:
    exported = export_conversation(conversation("Café ☕ plans"), "json", now=NOW)
    document = json.loads(exported.body)
    assert exported.filename == "cafe-plans.json" and exported.media_type == "application/json"
    assert document["format_version"] == 1 and document["exported_at"] == "2026-11-21T10:30:00Z"
    assert document["conversation"]["metadata"] == {"tag": "x"}
    assert [m["content"] for m in document["messages"]] == ["Namaste 🙏", "Hello!"]


def test_markdown_and_text_exports_name_the_speakers_and_mark_incomplete_replies() -> None:
    markdown = export_conversation(conversation(None), "markdown", now=NOW).body.decode()
    assert markdown.startswith("# Untitled conversation\n")
    assert "### You\n\nNamaste 🙏" in markdown
    assert "### Assistant (openai/gpt-4o-mini) _(incomplete)_\n\nHello!" in markdown
    text = export_conversation(conversation("../../etc/passwd"), "txt", now=NOW)
    assert text.filename == "etc-passwd.txt"
    assert "Assistant (openai/gpt-4o-mini) [incomplete]:\nHello!" in text.body.decode()


def test_a_title_without_ascii_letters_still_gives_a_filename() -> None:
    exported = export_conversation(conversation("नमस्ते"), "markdown", now=NOW)
    assert exported.filename.startswith("conversation-") and exported.filename.endswith(".md")


def test_cursors_round_trip_and_foreign_cursors_are_422() -> None:
    cursor = encode_cursor({"sequence_number": 42})
    assert decode_cursor(cursor, {"sequence_number": int}) == {"sequence_number": 42}
    for bad in ["", "!!!", encode_cursor({"other": 1}), encode_cursor({"sequence_number": "x"})]:
        with pytest.raises(ValidationError) as raised:
            decode_cursor(bad, {"sequence_number": int})
        assert raised.value.details["errors"][0]["field"] == "cursor"


def test_a_page_has_a_next_cursor_only_when_more_rows_exist() -> None:
    rows = list(range(4))
    full: Page[int] = page_of(rows, 3, lambda r: {"n": r})
    assert full.items == [0, 1, 2] and decode_cursor(full.next_cursor or "", {"n": int}) == {"n": 2}
    assert page_of(rows[:3], 3, lambda r: {"n": r}).next_cursor is None
