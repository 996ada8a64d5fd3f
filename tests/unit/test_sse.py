"""The SSE decoder: event splitting by the event-stream rules, fed in arbitrary pieces."""

from __future__ import annotations

import pytest

from oneai.openrouter.sse import ServerSentEvent, SSEComment, SSEDecoder, SSEItem


def decode(*chunks: bytes) -> list[SSEItem]:
    decoder = SSEDecoder()
    items: list[SSEItem] = []
    for chunk in chunks:
        items.extend(decoder.feed(chunk))
    items.extend(decoder.close())
    return items


def events(items: list[SSEItem]) -> list[ServerSentEvent]:
    return [item for item in items if isinstance(item, ServerSentEvent)]


# A stream with every feature: comments (OpenRouter's keep-alive), all three line endings, multi-line
# data, fields, multi-byte UTF-8 (2, 3 and 4 bytes), an event without data, and an unterminated event.
SAMPLE = (
    ": OPENROUTER PROCESSING\n\n"
    'data: {"text": "Hé"}\r\n\r\n'
    "event: update\rid: 7\rretry: 1500\rdata: line one\rdata:line two\r\r"
    ": OPENROUTER PROCESSING\r\n"
    "data: “quoted” 🙂\n"
    "\n"
    "event: lonely\n\n"
    "data: [DONE]\n\n"
    "data: never dispatched"
).encode()

SAMPLE_EXPECTED: list[SSEItem] = [
    SSEComment("OPENROUTER PROCESSING"),
    ServerSentEvent(data='{"text": "Hé"}'),
    ServerSentEvent(data="line one\nline two", event="update", id="7", retry=1500),
    SSEComment("OPENROUTER PROCESSING"),
    ServerSentEvent(data="“quoted” 🙂", id="7"),
    ServerSentEvent(data="[DONE]", id="7"),
]


def test_sample_stream_in_one_piece() -> None:
    # GIVEN the sample stream WHEN it is fed at once THEN comments and events come out in order
    assert decode(SAMPLE) == SAMPLE_EXPECTED


@pytest.mark.parametrize("offset", range(1, len(SAMPLE)))
def test_sample_stream_split_at_every_offset(offset: int) -> None:
    # GIVEN the sample split in two at any byte (inside UTF-8 characters, between CR and LF)
    # WHEN fed in two pieces THEN the result is the same as in one piece
    assert decode(SAMPLE[:offset], SAMPLE[offset:]) == SAMPLE_EXPECTED


def test_sample_stream_byte_by_byte() -> None:
    assert decode(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == SAMPLE_EXPECTED


def test_sample_stream_split_in_three_at_many_offsets() -> None:
    for first in range(1, len(SAMPLE), 7):
        for second in range(first + 1, len(SAMPLE), 5):
            assert decode(SAMPLE[:first], SAMPLE[first:second], SAMPLE[second:]) == SAMPLE_EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(ending: bytes) -> None:
    stream = b"data: a" + ending + b"data: b" + ending + ending + b"data: c" + ending + ending
    assert events(decode(stream)) == [ServerSentEvent(data="a\nb"), ServerSentEvent(data="c")]


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    # GIVEN "data: a\r" | "\n" | "data: b\r\n\r\n": the LF belongs to the CR before it
    items = decode(b"data: a\r", b"\n", b"data: b\r\n\r\n")
    # THEN it is one event with two data lines (not an early dispatch of "a")
    assert items == [ServerSentEvent(data="a\nb")]


def test_cr_at_chunk_end_followed_by_another_line() -> None:
    assert decode(b"data: a\r", b"data: b\r", b"\r") == [ServerSentEvent(data="a\nb")]


def test_comments_are_reported_and_never_data() -> None:
    items = decode(b": OPENROUTER PROCESSING\n:\n:no space\n:  two spaces\ndata: x\n\n")
    assert items == [
        SSEComment("OPENROUTER PROCESSING"),
        SSEComment(""),
        SSEComment("no space"),
        SSEComment(" two spaces"),
        ServerSentEvent(data="x"),
    ]


def test_comment_between_data_lines_does_not_split_the_event() -> None:
    assert decode(b"data: a\n: ping\ndata: b\n\n") == [SSEComment("ping"), ServerSentEvent(data="a\nb")]


def test_only_one_leading_space_is_removed() -> None:
    assert events(decode(b"data:  two\n\ndata:none\n\n")) == [
        ServerSentEvent(data=" two"),
        ServerSentEvent(data="none"),
    ]


def test_data_lines_join_with_newline_and_keep_empty_lines() -> None:
    assert events(decode(b"data: a\ndata:\ndata: c\n\n")) == [ServerSentEvent(data="a\n\nc")]


def test_field_without_colon_and_empty_data_dispatch_an_empty_event() -> None:
    assert events(decode(b"data\n\n")) == [ServerSentEvent(data="")]


def test_value_may_contain_colons() -> None:
    assert events(decode(b'data: {"a": "b:c"}\n\n')) == [ServerSentEvent(data='{"a": "b:c"}')]


def test_event_without_data_is_not_dispatched() -> None:
    # GIVEN blocks with only event/id/retry fields, and runs of blank lines
    items = decode(b"event: ping\n\nid: 1\n\nretry: 10\n\n\n\n\ndata: real\n\n")
    # THEN nothing but the block with data is dispatched (the id persists to it)
    assert items == [ServerSentEvent(data="real", id="1")]


def test_event_type_resets_after_dispatch() -> None:
    assert events(decode(b"event: custom\ndata: 1\n\ndata: 2\n\n")) == [
        ServerSentEvent(data="1", event="custom"),
        ServerSentEvent(data="2"),
    ]


def test_id_persists_and_id_with_nul_is_ignored() -> None:
    assert events(decode(b"id: a\ndata: 1\n\nid: b\x00c\ndata: 2\n\nid\ndata: 3\n\n")) == [
        ServerSentEvent(data="1", id="a"),
        ServerSentEvent(data="2", id="a"),
        ServerSentEvent(data="3", id=""),
    ]


def test_invalid_retry_is_ignored() -> None:
    assert events(decode(b"retry: 12a\ndata: x\n\nretry: \xc2\xb2\ndata: y\n\n")) == [
        ServerSentEvent(data="x"),
        ServerSentEvent(data="y"),
    ]


def test_unknown_fields_are_ignored() -> None:
    assert events(decode(b"foo: bar\ndata: x\nDATA: y\n\n")) == [ServerSentEvent(data="x")]


def test_incomplete_last_event_is_dropped_at_end_of_stream() -> None:
    # GIVEN a complete event then data lines without the closing blank line (the line itself ended)
    decoder = SSEDecoder()
    items = decoder.feed(b"data: complete\n\ndata: partial\n")
    # WHEN the stream ends THEN only the complete event was ever dispatched
    assert items == [ServerSentEvent(data="complete")]
    assert decoder.close() == []


def test_unterminated_last_line_is_dropped() -> None:
    assert decode(b"data: a\n\ndata: b") == [ServerSentEvent(data="a")]


def test_byte_order_mark_is_skipped_even_when_split() -> None:
    bom = "\ufeff".encode()
    assert decode(bom + b"data: x\n\n") == [ServerSentEvent(data="x")]
    assert decode(bom[:1], bom[1:2], bom[2:] + b"data: x\n\n") == [ServerSentEvent(data="x")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: a\xffb\n\n") == [ServerSentEvent(data="a\ufffdb")]


def test_long_line_fed_in_tiny_pieces() -> None:
    payload = "x" * 50_000
    stream = f"data: {payload}\n\n".encode()
    assert decode(*(stream[i : i + 7] for i in range(0, len(stream), 7))) == [ServerSentEvent(data=payload)]


def test_feed_returns_items_as_soon_as_they_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": OPENROUTER PROCESSING\n") == [SSEComment("OPENROUTER PROCESSING")]
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"") == []
    assert decoder.last_event_id is None
