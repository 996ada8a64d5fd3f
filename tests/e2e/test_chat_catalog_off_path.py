"""The model catalog never blocks a reply (issue 11): a fresh server whose OpenRouter is slow to send
`GET /models` answers the first chat turn without waiting for it, loads the catalog in the background,
and still lists the models once it has arrived."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter, ModelsReply, Reply
from tests.conftest import create_user
from tests.e2e.conftest import CHAT_MODEL, GENEROUS_RATE_LIMITS
from tests.e2e.limited_server import limited_server
from tests.sse_support import iter_events

pytestmark = pytest.mark.e2e
SLOW_MODELS_SECONDS = 1.5


@pytest.fixture
def fresh_server(database_url: str, openrouter: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    # Scripted before the server starts: the first `/models` the new server asks for takes 1.5 s.
    openrouter.script_models(ModelsReply(delay=SLOW_MODELS_SECONDS))
    with limited_server("catalog-off-path", database_url, openrouter, GENEROUS_RATE_LIMITS) as server:
        yield server


def test_the_first_reply_of_a_fresh_server_does_not_wait_for_a_slow_model_list(
    fresh_server: LocalServerProcess, openrouter: FakeOpenRouter, database_url: str
) -> None:
    user = create_user(database_url)
    openrouter.script(Reply(chunks=["Hi", " there"]), model=CHAT_MODEL)
    with httpx.Client(base_url=fresh_server.base_url, timeout=30) as http:
        # WHEN the user sends the server's first chat turn
        started = time.monotonic()
        with http.stream(
            "POST", "/chat/stream", json={"model": CHAT_MODEL, "content": "Hello"}, headers=user.headers
        ) as response:
            assert response.status_code == 200
            first_delta_at = None
            events = []
            for event in iter_events(response.iter_bytes()):
                events.append(event)
                if first_delta_at is None and isinstance(event, dict) and event["type"] == "text-delta":
                    first_delta_at = time.monotonic()
        # THEN the first token arrived well before the slow model list could have
        assert first_delta_at is not None, events
        assert first_delta_at - started < SLOW_MODELS_SECONDS * 0.5
        deltas = [e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta"]
        assert "".join(deltas) == "Hi there"
        # ... while the server did ask for the list (in the background), which was still on its way
        models_requests = [r for r in openrouter.requests if r.path.endswith("/models")]
        assert models_requests, "the catalog refresh was not started"
        chat_request = next(r for r in openrouter.requests if r.path.endswith("/chat/completions"))
        assert chat_request.received_at < models_requests[0].received_at + SLOW_MODELS_SECONDS

        # AND once the list has arrived, the models are listed from it
        deadline = time.monotonic() + 10
        while True:
            listed = http.get("/chat/models", headers=user.headers)
            assert listed.status_code == 200
            if any(item["id"] == CHAT_MODEL for item in listed.json()["items"]) or time.monotonic() > deadline:
                break
        assert any(item["id"] == CHAT_MODEL for item in listed.json()["items"])
