"""The AI SDK UI message stream (v1) as bytes: `data: {json}\\n\\n` events, then `data: [DONE]`.

The AI SDK client rejects unknown keys in the parts it knows, so every part here carries exactly the
keys of its type; everything of ours travels in `data-*` parts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oneai.chatbots.chatbot_turn import Passage

STREAM_HEADERS = {
    "content-type": "text/event-stream",
    "x-vercel-ai-ui-message-stream": "v1",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    # proxies (nginx-style) must not buffer the stream
    "x-accel-buffering": "no",
}
TEXT_PART_ID = "t0"
DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def encode(part: dict[str, Any]) -> bytes:
    """One part as its `data:` event."""
    return b"data: " + json.dumps(part, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


_event = encode


def start(message_id: str) -> bytes:
    return _event({"type": "start", "messageId": message_id})


def data(name: str, payload: dict[str, Any], *, part_id: str | None = None) -> bytes:
    """A custom `data-<name>` part; parts with the same id replace each other on the client."""
    part: dict[str, Any] = {"type": f"data-{name}"}
    if part_id is not None:
        part["id"] = part_id
    part["data"] = payload
    return _event(part)


def text_start(part_id: str = TEXT_PART_ID) -> bytes:
    return _event({"type": "text-start", "id": part_id})


def text_delta(delta: str, part_id: str = TEXT_PART_ID) -> bytes:
    return _event({"type": "text-delta", "id": part_id, "delta": delta})


def text_end(part_id: str = TEXT_PART_ID) -> bytes:
    return _event({"type": "text-end", "id": part_id})


def finish() -> bytes:
    return _event({"type": "finish"})


def error(text: str) -> bytes:
    return _event({"type": "error", "errorText": text})


def file(media_type: str, url: str) -> bytes:
    """A file of the reply (an image the model made): the AI SDK puts it in the message's parts."""
    return _event({"type": "file", "mediaType": media_type, "url": url})


def source_document(passage: Passage) -> bytes:
    """A passage a chatbot's reply is given (API.md "shared rules"): before the first `text-start`; the
    AI SDK keeps it in the message's parts."""
    title = passage.filename if passage.page is None else f"{passage.filename} p. {passage.page}"
    return _event(
        {
            "type": "source-document",
            "sourceId": str(passage.chunk_id),
            "mediaType": passage.media_type,
            "title": title,
            "filename": passage.filename,
            "providerMetadata": {
                "oneai": {
                    "document_id": str(passage.document_id),
                    "page": passage.page,
                    "chunk_index": passage.index,
                    "score": passage.score,
                }
            },
        }
    )
