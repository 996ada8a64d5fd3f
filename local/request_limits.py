"""API Gateway's limits on a request's URL and headers, enforced by the `make dev` gateway.

API Gateway refuses an over-long URL or over-large headers before any function runs. The quotas (AWS,
"Quotas for configuring and running a REST API", regional endpoint): the URL at most 10240 characters,
all header values together at most 10240 bytes. A Function URL (the webhooks) takes Lambda's: 1 MB for
the request line and header values combined. Locally the answer is 414 `URI_TOO_LONG` or 431
`HEADERS_TOO_LARGE` in the error envelope.

Two places check: `refusal` (the ASGI gateway, for every request uvicorn parsed) and
`GatewayH11Protocol` (uvicorn's HTTP/1.1 protocol with room for a Function URL's 1 MB head; past even
that, it answers the same statuses where uvicorn would answer 400 and drop the connection, which the
client, still sending, sees as a reset).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_URL_CHARS = 10240
MAX_HEADER_VALUES_BYTES = 10240
MAX_FUNCTION_URL_HEAD_BYTES = 1024 * 1024
# What uvicorn keeps of a request head before refusing it: a Function URL's head, and header names.
MAX_PARSED_HEAD_BYTES = MAX_FUNCTION_URL_HEAD_BYTES + 64 * 1024
# After refusing an unparsed head, the rest of what the client sends is read and dropped for this long
# (or until it closes), so that its send completes and it reads the answer instead of a reset.
LINGER_SECONDS = 5.0

URI_TOO_LONG = (414, "URI_TOO_LONG", "The request URL is too long")
HEADERS_TOO_LARGE = (431, "HEADERS_TOO_LARGE", "The request headers are too large")
_REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large"}


def envelope(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()


def refusal(
    raw_path: bytes, query_string: bytes, headers: Sequence[tuple[bytes, bytes]], *, function_url: bool
) -> tuple[int, str, str] | None:
    """The (status, code, message) API Gateway (or a Function URL) answers this request with, if any."""
    url_chars = len(raw_path) + (len(query_string) + 1 if query_string else 0)
    header_bytes = sum(len(value) for _, value in headers)
    if function_url:
        over = url_chars + header_bytes > MAX_FUNCTION_URL_HEAD_BYTES
        return (URI_TOO_LONG if url_chars > MAX_FUNCTION_URL_HEAD_BYTES else HEADERS_TOO_LARGE) if over else None
    if url_chars > MAX_URL_CHARS:
        return URI_TOO_LONG
    if header_bytes > MAX_HEADER_VALUES_BYTES:
        return HEADERS_TOO_LARGE
    return None


class GatewayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, keeping request heads up to `MAX_PARSED_HEAD_BYTES`, and answering a larger
    one with 414 (its request line alone is that long) or 431 in the envelope."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_PARSED_HEAD_BYTES)
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        buffered, _ = self.conn.trailing_data
        if len(buffered) <= MAX_PARSED_HEAD_BYTES:
            super().send_400_response(msg)  # malformed, not too large: uvicorn's own answer
            return
        line_end = buffered.find(b"\r\n")
        too_long_line = line_end < 0 or line_end > MAX_FUNCTION_URL_HEAD_BYTES
        status, code, message = URI_TOO_LONG if too_long_line else HEADERS_TOO_LARGE
        body = envelope(code, message)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self._refused = True
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def shutdown(self) -> None:
        if self._refused:
            self.transport.close()
        else:
            super().shutdown()
