"""The body limit holds for bodies that do not declare their length: a client streaming a chunked body
(no Content-Length, as uvicorn under the Lambda Web Adapter receives it for the chat stream) gets 413 in
the envelope once it passes ONEAI_MAX_BODY_BYTES, before any token check, parsing or database work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest
from account.app import build_app as account_app
from billing.app import build_app as billing_app
from chat_stream.app import build_app as chat_app
from fastapi import FastAPI

from conversations.app import build_app as conversations_app
from oneai.config import override_settings

LIMIT = 4096
APPS: list[tuple[Callable[[], FastAPI], str, str]] = [
    (conversations_app, "POST", "/conversations"),
    (account_app, "PATCH", "/user/profile"),
    (billing_app, "POST", "/subscription/create"),
    (chat_app, "POST", "/chat/stream"),
]


def json_of_size(size: int) -> bytes:
    document = b'{"pad": "' + b"x" * (size - 11) + b'"}'
    assert len(document) == size
    return document


def send_chunked(build: Callable[[], FastAPI], method: str, path: str, size: int) -> httpx.Response:
    document = json_of_size(size)

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, size, 1024):  # 1 KiB pieces, no length announced: the limit must count them
            yield document[start : start + 1024]

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=build())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as http:
            return await http.request(method, path, content=body(), headers={"content-type": "application/json"})

    with override_settings(max_body_bytes=LIMIT):
        return anyio.run(request)


@pytest.mark.parametrize(("build", "method", "path"), APPS, ids=[path for _, _, path in APPS])
def test_a_chunked_body_over_the_limit_is_413_in_the_envelope(
    build: Callable[[], FastAPI], method: str, path: str
) -> None:
    answer = send_chunked(build, method, path, LIMIT + 1)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["message"] == f"The body must be at most {LIMIT} bytes"


@pytest.mark.parametrize(("build", "method", "path"), APPS, ids=[path for _, _, path in APPS])
def test_a_chunked_body_within_the_limit_goes_on_to_the_token_check(
    build: Callable[[], FastAPI], method: str, path: str
) -> None:
    answer = send_chunked(build, method, path, LIMIT)
    assert answer.status_code == 401  # no token: refused for that, not for its size
    assert answer.json()["error"]["code"] == "UNAUTHORIZED"
