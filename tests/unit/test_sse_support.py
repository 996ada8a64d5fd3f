"""The tests' event-stream reader (tests/sse_support.py): whole events however the bytes are cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.sse_support import aiter_events, events_of, iter_events, parts_came, read_until

STREAM = (
    b": keep-alive\n\n"
    b'data: {"type":"start","messageId":"m1"}\n\n'
    b'data: {"type":"data-conversation","data":{"id":"c1"}}\r\n\r\n'
    b'data: {"type":"text-delta","delta":"caf\xc3\xa9 "}\r\r'
    b'data: {"type":"text-delta","delta":"au lait"}\n\n'
    b"data: [DONE]\n\n"
)
EVENTS: list[Any] = [
    {"type": "start", "messageId": "m1"},
    {"type": "data-conversation", "data": {"id": "c1"}},
    {"type": "text-delta", "delta": "café "},
    {"type": "text-delta", "delta": "au lait"},
    "[DONE]",
]


def cut(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def streamed(chunks: list[bytes]) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, content=body())


@pytest.mark.parametrize("size", [1, 2, 3, 7, 40, len(STREAM)])
def test_the_events_are_the_same_whatever_chunks_the_bytes_come_in(size: int) -> None:
    assert list(iter_events(cut(STREAM, size))) == EVENTS

    async def read() -> tuple[list[Any], list[Any]]:
        events = aiter_events(streamed(cut(STREAM, size)))
        first = await read_until(events, parts_came("text-delta"))
        return first, [event async for event in events]

    first, rest = asyncio.run(read())
    assert (first, rest) == (EVENTS[:3], EVENTS[3:])


def test_an_event_cut_off_at_the_end_is_not_an_event() -> None:
    assert events_of(STREAM + b'data: {"type":"text-de') == EVENTS
    assert events_of(STREAM.decode()[: -len("\n")]) == EVENTS[:-1]


def test_a_stream_that_ends_before_the_events_waited_for_fails_with_what_came() -> None:
    async def read() -> list[Any]:
        return await read_until(aiter_events(streamed([STREAM])), parts_came("text-delta", 3))

    with pytest.raises(AssertionError, match="the stream ended before"):
        asyncio.run(read())
