"""The chat app's log context reads the adapter's context headers, which a client can send as well."""

from __future__ import annotations

import pytest
from chat_stream.middleware import _json_header


@pytest.mark.parametrize(
    "raw", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"not json", b"[1, 2]"]
)
def test_a_context_header_that_is_no_json_object_gives_no_context(raw: bytes) -> None:
    # GIVEN a request context header too deep to parse, malformed, or not an object
    # WHEN the log context reads it THEN there is no context, and the request goes on (no 500)
    assert _json_header({b"x-amzn-request-context": raw}, b"x-amzn-request-context") == {}


def test_a_context_header_object_is_read() -> None:
    assert _json_header({b"x-amzn-request-context": b'{"requestId": "r-1"}'}, b"x-amzn-request-context") == {
        "requestId": "r-1"
    }
