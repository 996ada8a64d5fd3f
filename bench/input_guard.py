"""What the input guard (`oneai.web.inputs.InputGuard`: NUL, lone surrogates and NaN refused before any
route runs) costs per request, against the same app without it, measured in the same run.

Both apps come from the one factory every function uses (`oneai.web.create_app`), with one route that
takes a JSON body (`POST /b/echo`, a `dict`, answered with its key count) and one that reads a query
(`GET /b/search?q=`). The baseline is that app with the guard taken out of its middleware. Requests are
ASGI calls in process (no socket, no database), so the difference is the guard's own time: one more
JSON parse of the body and a walk over its strings, only for bodies that hold a `\\u0000`/`\\ud8..`-style
escape, `NaN` or `Infinity` (others are only searched for those), and for every body with more than 64
brackets the depth of its nesting, read from its bytes. Bodies: a conversation create (~60 B), a
chat turn of 20 KB (plain, and with emoji escaped as ASCII-only JSON writes them, which takes the full
check), and a 200 KB body (under the 256 KiB limit). Goal: under 1 ms at p95 for the 20 KB chat bodies.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, FastAPI

from bench._report import SUMMARY_HEADERS, summarize, summary_row, table
from oneai.web.app import create_app
from oneai.web.inputs import InputGuard


def _apps() -> tuple[FastAPI, FastAPI]:
    def build() -> FastAPI:
        router = APIRouter(prefix="/b")

        @router.post("/echo")
        def echo(body: dict[str, Any]) -> dict[str, int]:
            return {"keys": len(body)}

        @router.get("/search")
        def search(q: str = "") -> dict[str, int]:
            return {"length": len(q)}

        return create_app(title="bench", prefix="/b", routers=[router])

    guarded, bare = build(), build()
    bare.user_middleware = [m for m in bare.user_middleware if m.cls is not InputGuard]
    return guarded, bare


async def _call(app: FastAPI, method: str, path: str, query: bytes, body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


def _samples(app: FastAPI, request: tuple[str, str, bytes, bytes], n: int) -> list[float]:
    method, path, query, body = request

    async def measure() -> list[float]:
        for _ in range(20):  # warm: routes compiled, middleware stack built
            assert await _call(app, method, path, query, body) == 200
        times = []
        for _ in range(n):
            started = time.perf_counter()
            status = await _call(app, method, path, query, body)
            times.append(time.perf_counter() - started)
            assert status == 200
        return times

    return asyncio.run(measure())


def run(*, quick: bool = False) -> None:
    n = 100 if quick else 1000
    guarded, bare = _apps()
    chat = json.dumps({"model": "openai/gpt-4o-mini", "content": "word " * 4000}).encode()
    large = json.dumps({f"k{i}": {"text": "x" * 180, "n": i, "tags": ["a", "b"]} for i in range(1000)}).encode()
    # Emoji as clients with ASCII-only JSON write them (`\ud83d\ude00`): such a body is parsed and walked.
    escaped = json.dumps({"model": "openai/gpt-4o-mini", "content": "word \U0001f600 " * 2500}).encode()
    cases = [
        (
            "conversation create (60 B)",
            "POST",
            "/b/echo",
            b"",
            json.dumps({"title": "Trip", "metadata": {}}).encode(),
        ),
        (f"chat turn ({len(chat) // 1024} KB)", "POST", "/b/echo", b"", chat),
        (f"chat turn, escaped emoji ({len(escaped) // 1024} KB)", "POST", "/b/echo", b"", escaped),
        (f"large body ({len(large) // 1024} KB)", "POST", "/b/echo", b"", large),
        ("query string", "GET", "/b/search", b"q=hello+world&limit=20", b""),
    ]
    print(f"input_guard: per request, in-process ASGI calls, {n} each after warm-up")
    rows = []
    for label, method, path, query, body in cases:
        base = summarize(_samples(bare, (method, path, query, body), n))
        with_guard = summarize(_samples(guarded, (method, path, query, body), n))
        rows.append(summary_row(f"{label}, baseline (no guard)", base))
        rows.append(summary_row(f"{label}, guarded", with_guard))
        # The min difference is the steadiest figure on a shared machine; the median one is shown too.
        rows.append(
            [
                f"{label}, guard's cost",
                f"{(with_guard.median - base.median) * 1000:+.3f}",
                "",
                f"{(with_guard.min - base.min) * 1000:+.3f}",
            ]
        )
    print(table(SUMMARY_HEADERS, rows))
