"""Export the current branch of a conversation as a download: json (with metadata), markdown or txt."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime

from oneai.conversations.models import ConversationWithMessages, Export, ExportFormat, Message
from oneai.timestamps import iso_z

EXPORT_FORMAT_VERSION = 1
_SPEAKERS = {"user": "You", "assistant": "Assistant", "system": "System"}


def export_filename(conversation: ConversationWithMessages, extension: str) -> str:
    """An ASCII, filesystem-safe name from the title (the content-disposition also carries UTF-8)."""
    title = conversation.title or ""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_title).strip("-").lower()[:60]
    return f"{slug or 'conversation-' + str(conversation.id)[:8]}.{extension}"


def _speaker(message: Message) -> str:
    name = _SPEAKERS[message.role]
    return f"{name} ({message.model_id})" if message.role == "assistant" else name


def _as_json(conversation: ConversationWithMessages, exported_at: datetime) -> str:
    document = {
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": iso_z(exported_at),
        "conversation": conversation.model_dump(mode="json", exclude={"messages"}),
        "messages": [m.model_dump(mode="json") for m in conversation.messages],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def _as_markdown(conversation: ConversationWithMessages, exported_at: datetime) -> str:
    lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
    lines.append(f"_Exported {exported_at:%Y-%m-%d %H:%M} UTC · {len(conversation.messages)} messages_")
    for message in conversation.messages:
        note = "" if message.status == "complete" else f" _({message.status})_"
        lines += ["", f"### {_speaker(message)}{note}", "", message.content]
        lines += [f"![{a.media_type} attachment]({a.url})" for a in message.attachments]
    return "\n".join(lines) + "\n"


def _as_text(conversation: ConversationWithMessages, exported_at: datetime) -> str:
    lines = [conversation.title or "Untitled conversation", f"Exported {exported_at:%Y-%m-%d %H:%M} UTC"]
    for message in conversation.messages:
        note = "" if message.status == "complete" else f" [{message.status}]"
        lines += ["", f"{_speaker(message)}{note}:", message.content]
        lines += [f"[attachment {a.media_type}: {a.url}]" for a in message.attachments]
    return "\n".join(lines) + "\n"


def export_conversation(
    conversation: ConversationWithMessages, fmt: ExportFormat, *, now: datetime | None = None
) -> Export:
    exported_at = now or datetime.now(UTC)
    if fmt == "json":
        body, media_type, extension = _as_json(conversation, exported_at), "application/json", "json"
    elif fmt == "markdown":
        body, media_type, extension = _as_markdown(conversation, exported_at), "text/markdown; charset=utf-8", "md"
    else:
        body, media_type, extension = _as_text(conversation, exported_at), "text/plain; charset=utf-8", "txt"
    return Export(
        filename=export_filename(conversation, extension), media_type=media_type, body=body.encode("utf-8")
    )
