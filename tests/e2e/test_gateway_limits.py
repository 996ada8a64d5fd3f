"""API Gateway's limits on the URL and the headers, as `make dev` enforces them (local/request_limits.py):
414 `URI_TOO_LONG` and 431 `HEADERS_TOO_LARGE` in the error envelope, whatever the size, and never a
connection reset (a 1 MB URL or a 130 KB Authorization header used to get no HTTP answer at all)."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from local.request_limits import MAX_HEADER_VALUES_BYTES, MAX_URL_CHARS
from tests.e2e.conftest import LocalServer


def exchange(server: LocalServer, head: bytes) -> tuple[int, dict[str, Any]]:
    """Send a request head over a raw socket (clients refuse such sizes) and read the whole answer."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed without an answer: {received!r}"
            received += chunk
        header_block, _, body = received.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before the body's end"
            body += chunk
    return int(lines[0].split()[1]), json.loads(body)


def get(path: str, *headers: bytes) -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
    )


@pytest.mark.parametrize("query_chars", [1_000_000, 3_000_000], ids=["1MB", "3MB-past-the-parser"])
def test_an_over_long_url_is_414_in_the_envelope(local_server: LocalServer, query_chars: int) -> None:
    status, body = exchange(local_server, get("/conversations?q=" + "a" * query_chars))
    assert status == 414
    assert body["error"]["code"] == "URI_TOO_LONG"


@pytest.mark.parametrize("value_bytes", [130_000, 3_000_000], ids=["130KB", "3MB-past-the-parser"])
def test_over_large_headers_are_431_in_the_envelope(local_server: LocalServer, value_bytes: int) -> None:
    status, body = exchange(local_server, get("/conversations", b"Authorization: Bearer " + b"a" * value_bytes))
    assert status == 431
    assert body["error"]["code"] == "HEADERS_TOO_LARGE"


def test_the_limits_are_api_gateways_own(local_server: LocalServer) -> None:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as client:
        path = "/conversations?q="
        at_limit = client.get(path + "a" * (MAX_URL_CHARS - len(path)))
        over = client.get(path + "a" * (MAX_URL_CHARS - len(path) + 1))
        assert (at_limit.status_code, over.status_code) == (401, 414)
        # All header values together: the client adds its own (host, accept, ...) to the one sent here.
        sent = dict(client.build_request("GET", "/conversations").headers)
        room = MAX_HEADER_VALUES_BYTES - sum(len(value) for value in sent.values())
        fits = client.get("/conversations", headers={"x-padding": "a" * room})
        too_many = client.get("/conversations", headers={"x-padding": "a" * (room + 1)})
        assert (fits.status_code, too_many.status_code) == (401, 431)


def test_the_webhooks_function_url_takes_lambdas_larger_limit(local_server: LocalServer) -> None:
    # 20 KB of headers: over a REST API's quota, within a Function URL's 1 MB; the signature check answers.
    response = httpx.post(
        f"{local_server.base_url}/webhooks/razorpay",
        content=b"{}",
        headers={"x-padding": "a" * 20_000, "x-razorpay-signature": "0" * 64},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    too_large = httpx.post(
        f"{local_server.base_url}/webhooks/razorpay",
        content=b"{}",
        headers={"x-padding": "a" * 1_100_000},
        timeout=30,
    )
    assert too_large.status_code == 431
