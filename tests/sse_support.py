"""Event streams read as a client reads them: whole events, however the bytes arrive.

A stream's chunks are what the network and the server's writes happened to deliver together: one chunk
can hold half an event or several, more so on a busy machine. So the tests never look at chunks or lines;
they buffer the bytes and take the events the event-stream rules dispatch (a blank line ends an event;
lines end with LF, CRLF or CR; comments are not events; an event cut off at the end is dropped), decoded
by `oneai.openrouter.sse.SSEDecoder` (those rules, tests/unit/test_sse.py). Each event comes as its `data`:
JSON decoded, and `[DONE]` as that string.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx

from oneai.openrouter.sse import ServerSentEvent, SSEDecoder, SSEItem

DONE = "[DONE]"


def _payloads(items: Iterable[SSEItem]) -> Iterator[Any]:
    for item in items:
        if isinstance(item, ServerSentEvent):
            yield item.data if item.data == DONE else json.loads(item.data)


def events_of(body: str | bytes) -> list[Any]:
    """The events of a whole stream body (a response read to its end)."""
    decoder = SSEDecoder()
    items = decoder.feed(body.encode() if isinstance(body, str) else body) + decoder.close()
    return list(_payloads(items))


def iter_events(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The events of a stream as they complete (`response.iter_bytes()`, or a generator's own chunks)."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from _payloads(decoder.feed(chunk))
    yield from _payloads(decoder.close())


async def aiter_events(response: httpx.Response) -> AsyncIterator[Any]:
    """The events of a streamed response as they complete. Reading can stop after any event and go on
    later from the next one (keep the iterator)."""
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in _payloads(decoder.feed(chunk)):
            yield event
    for event in _payloads(decoder.close()):
        yield event


async def read_until(events: AsyncIterator[Any], enough: Callable[[list[Any]], bool]) -> list[Any]:
    """Events from `events` until `enough(events so far)`; the stream ending first fails the test."""
    seen: list[Any] = []
    async for event in events:
        seen.append(event)
        if enough(seen):
            return seen
    raise AssertionError(f"the stream ended before the events waited for: {seen!r}")


def parts_came(kind: str, count: int = 1) -> Callable[[list[Any]], bool]:
    """For `read_until`: once `count` parts of type `kind` (say "text-delta") have come."""
    return lambda seen: sum(isinstance(e, dict) and e.get("type") == kind for e in seen) >= count
