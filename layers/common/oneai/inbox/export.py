"""The inbox's export as a stream of bytes: JSON (one document `{"items":[...]}`), CSV (one row per message)
or Markdown, written conversation by conversation from the data layer's server-side cursor. Nothing here
holds more than one conversation: the caller decides where the chunks go (oneai.inbox.service)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final

from oneai.inbox.models import ExportFormat
from oneai.timestamps import iso_z

MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
CSV_COLUMNS: Final = (
    "conversation_id", "started_at", "visitor_id", "page_url", "referrer", "locale", "status", "tags",
    "rating", "rating_comment", "notes", "message_id", "role", "content", "message_status", "model_id",
    "sources", "created_at",
)  # fmt: skip
_FORMULA_STARTS: Final = frozenset("=+-@\t\r")
_SPEAKERS: Final = {"user": "Visitor", "assistant": "Assistant"}


def _time(moment: datetime | None) -> str | None:
    return iso_z(moment) if moment is not None else None


def conversation_document(row: dict[str, Any], *, messages: bool = True) -> dict[str, Any]:
    """One exported conversation (the detail's shape), its messages parsed from the row's JSON text (or
    left out, for the JSON export, which writes that text as it is)."""
    rating = None
    if row["rating"] is not None:
        rating = {"score": row["rating"], "comment": row["rating_comment"], "rated_at": _time(row["rated_at"])}
    return {
        "id": str(row["id"]),
        "chatbot_id": str(row["chatbot_id"]) if row["chatbot_id"] else None,
        "visitor": {
            "id": row["visitor_id"],
            "page_url": row["page_url"],
            "referrer": row["referrer"],
            "user_agent": row["user_agent"],
            "locale": row["locale"],
        },
        "started_at": _time(row["started_at"]),
        "last_message_at": _time(row["last_message_at"]),
        "updated_at": _time(row["updated_at"]),
        "status": row["status"],
        "tags": list(row["tags"]),
        "notes": row["notes"],
        "rating": rating,
        **({"messages": json.loads(row["messages_json"])} if messages else {}),
    }


def _json(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield '{"items":['
    first = True
    for row in rows:
        head = json.dumps(conversation_document(row, messages=False), ensure_ascii=False)
        yield ("" if first else ",") + head[:-1] + ',"messages":' + row["messages_json"] + "}"
        first = False
    yield "]}\n"


def _cell(value: Any) -> str:
    """Text for a CSV cell; one a spreadsheet would run as a formula gets a leading `'`."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def _csv(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flushed() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flushed()
    for row in rows:
        doc = conversation_document(row)
        head = [
            doc["id"], doc["started_at"], doc["visitor"]["id"], doc["visitor"]["page_url"],
            doc["visitor"]["referrer"], doc["visitor"]["locale"], doc["status"], ";".join(doc["tags"]),
            doc["rating"]["score"] if doc["rating"] else None, doc["rating"]["comment"] if doc["rating"] else None,
            doc["notes"],
        ]  # fmt: skip
        head_cells = [_cell(v) for v in head]
        for message in doc["messages"] or [None]:
            tail: list[Any] = [None] * 7
            if message is not None:
                tail = [
                    message["id"], message["role"], message["content"], message["status"], message["model_id"],
                    json.dumps(message["sources"], ensure_ascii=False) if message["sources"] else None,
                    message["created_at"],
                ]  # fmt: skip
            writer.writerow(head_cells + [_cell(v) for v in tail])
        yield flushed()


def _markdown(rows: Iterable[dict[str, Any]], title: str) -> Iterator[str]:
    yield f"# {title}\n"
    for row in rows:
        doc = conversation_document(row)
        visitor = doc["visitor"]
        lines = ["", f"## Conversation {doc['id']}", ""]
        lines.append(f"- Started: {doc['started_at']}")
        lines.append(f"- Visitor: {visitor['id']}" + (f" on {visitor['page_url']}" if visitor["page_url"] else ""))
        lines.append(f"- Status: {doc['status']}")
        if doc["tags"]:
            lines.append(f"- Tags: {', '.join(doc['tags'])}")
        if doc["rating"]:
            comment = f" ({doc['rating']['comment']})" if doc["rating"]["comment"] else ""
            lines.append(f"- Rating: {doc['rating']['score']}/5{comment}")
        if doc["notes"]:
            lines.append(f"- Notes: {doc['notes']}")
        for message in doc["messages"]:
            note = "" if message["status"] == "complete" else f" _({message['status']})_"
            lines += ["", f"### {_SPEAKERS.get(message['role'], message['role'])}{note}", "", message["content"]]
            for source in message["sources"] or []:
                page = f" p. {source['page']}" if source.get("page") is not None else ""
                lines.append(f"> source: {source.get('filename') or source.get('document_id')}{page}")
        yield "\n".join(lines) + "\n"


def export_chunks(rows: Iterable[dict[str, Any]], fmt: ExportFormat, *, title: str) -> Iterator[bytes]:
    """The export, one conversation's text at a time, as UTF-8 bytes."""
    if fmt == "json":
        texts = _json(rows)
    elif fmt == "csv":
        texts = _csv(rows)
    else:
        texts = _markdown(rows, title)
    for text in texts:
        yield text.encode("utf-8")


def export_filename(chatbot_name: str, fmt: ExportFormat, exported_at: datetime) -> str:
    safe = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in chatbot_name).strip("-").lower()
    return f"{safe[:40] or 'chatbot'}-conversations-{exported_at:%Y%m%d-%H%M%S}.{fmt}"
