"""A Server-Sent Events decoder that only splits a byte stream into events (the HTML "event stream" rules).

It knows nothing about OpenRouter or JSON: `SSEDecoder.feed()` takes bytes as they arrive, in chunks that
may split anywhere (inside a multi-byte UTF-8 character, or between the CR and LF of one line ending), and
returns what became complete:

- `ServerSentEvent` for each dispatched event (a blank line ends an event; an event without any `data`
  line is not dispatched; several `data` lines are joined with "\\n");
- `SSEComment` for each line that starts with ":" (OpenRouter sends `: OPENROUTER PROCESSING` while it
  waits for the provider). Comments are reported so that a relay can keep its own client alive; they
  are never data.

Lines end with "\\n", "\\r\\n" or "\\r". Line endings are ASCII bytes that never occur inside a multi-byte
UTF-8 sequence, so the decoder buffers bytes and decodes whole lines only. At the end of the stream an
incomplete event (no blank line after it) is dropped, as the rules require.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEComment", "SSEDecoder", "SSEItem", "ServerSentEvent"]

_LINE_END = re.compile(rb"[\r\n]")
_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event. `id` is the last event id seen so far in the stream (it persists across
    events, as in the rules); `retry` is set only when this event's block carried a valid `retry` field."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


@dataclass(frozen=True, slots=True)
class SSEComment:
    """A comment line (`: text`); `text` has the colon and one optional following space removed."""

    text: str


SSEItem = ServerSentEvent | SSEComment


class SSEDecoder:
    """Incremental decoder: `feed(bytes) -> list[SSEItem]`, then `close()` at the end of the stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._searched = 0  # bytes of the buffer known to hold no line ending
        self._skip_lf = False  # the previous line ended with CR: a LF right after it belongs to it
        self._bom_checked = False
        self._data: list[str] = []
        self._event_type = ""
        self._last_event_id: str | None = None
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str | None:
        return self._last_event_id

    def feed(self, chunk: bytes) -> list[SSEItem]:
        """Add bytes; return the comments and events that are complete now, in stream order."""
        items: list[SSEItem] = []
        if not chunk:
            return items
        buffer = self._buffer
        buffer += chunk
        if not self._bom_checked:
            if len(buffer) < len(_BOM) and _BOM.startswith(bytes(buffer)):
                return items  # could still be a byte order mark: wait for more
            if buffer.startswith(_BOM):
                del buffer[: len(_BOM)]
            self._bom_checked = True
        position = 0
        while True:
            if self._skip_lf:
                if position >= len(buffer):
                    break
                if buffer[position] == _LF:
                    position += 1
                self._skip_lf = False
            match = _LINE_END.search(buffer, max(position, self._searched))
            if match is None:
                break
            end = match.start()
            line = bytes(buffer[position:end])
            self._skip_lf = buffer[end] == _CR
            position = end + 1
            self._searched = position
            self._process_line(line.decode("utf-8", errors="replace"), items)
        if position:
            del buffer[:position]
        self._searched = len(buffer)  # what is left holds no line ending
        return items

    def close(self) -> list[SSEItem]:
        """End of stream: an unterminated line and an event without its closing blank line are dropped."""
        self._buffer.clear()
        self._searched = 0
        self._skip_lf = False
        self._data.clear()
        self._event_type = ""
        self._retry = None
        return []

    def _process_line(self, line: str, items: list[SSEItem]) -> None:
        if not line:
            self._dispatch(items)
            return
        if line.startswith(":"):
            text = line[1:]
            items.append(SSEComment(text[1:] if text.startswith(" ") else text))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # any other field name is ignored

    def _dispatch(self, items: list[SSEItem]) -> None:
        if self._data:
            items.append(
                ServerSentEvent(
                    data="\n".join(self._data),
                    event=self._event_type or "message",
                    id=self._last_event_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._event_type = ""
        self._retry = None
