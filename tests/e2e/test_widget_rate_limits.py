"""The widget's rate limits over HTTP, as a page reads them (issue 27): a visitor cut at their limit while
another visitor is still answered (on sessions, and on the public chat), then the address itself cut at its
limit; each refusal a 429 the page can read (the CORS header echoes its origin) with `Retry-After` and the bucket that refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter, Reply
from tests.e2e.conftest import GENEROUS_RATE_LIMITS
from tests.e2e.limited_server import limited_server
from tests.widget_support import KNOWLEDGE_MODEL, QUESTION, create_chatbot, knowledge_chatbot, new_visitor_id

SHOP = "https://shop.example"
# One token a minute each, so nothing refills during the test: 6 requests per address, 2 per visitor.
LIMITS = {
    **GENEROUS_RATE_LIMITS,
    "ONEAI_WIDGET_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_WIDGET_RATE_LIMIT_BURST": "6",
    "ONEAI_WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_WIDGET_VISITOR_RATE_LIMIT_BURST": "2",
}


def clear_widget_buckets(database_url: str) -> None:
    """Every test server here calls from 127.0.0.1: leave its widget buckets as other servers expect."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from oneai_private.source_rate_limits where bucket in ('widget', 'widget_visitor')")


@pytest.fixture
def server(database_url: str, fake_openrouter_server: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    clear_widget_buckets(database_url)
    try:
        with limited_server("widget-limits", database_url, fake_openrouter_server, LIMITS) as started:
            yield started
    finally:
        clear_widget_buckets(database_url)


def test_a_visitor_then_an_address_is_cut_at_its_limit_with_a_readable_retry_after(
    server: LocalServerProcess, database_url: str
) -> None:
    chatbot = create_chatbot(database_url, widget={"allowed_origins": [SHOP]})
    sessions = f"{server.base_url}/public/chatbots/{chatbot.public_id}/sessions"
    busy, calm = new_visitor_id(), new_visitor_id()

    def open_session(visitor: str) -> httpx.Response:
        body = {"visitor_id": visitor, "page_url": f"{SHOP}/"}
        return httpx.post(sessions, json=body, headers={"origin": SHOP}, timeout=30)

    assert [open_session(busy).status_code for _ in range(2)] == [200, 200]
    refused = open_session(busy)  # the visitor's third
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"].startswith('"widget_visitor"')
    assert refused.headers["access-control-allow-origin"] == SHOP  # the widget reads it
    assert "retry-after" in refused.headers["access-control-expose-headers"]
    assert open_session(calm).status_code == 200  # another visitor, same address: answered

    # The address has spent 4 of its 6; two more, then the page's address is cut whoever the visitor.
    assert [open_session(new_visitor_id()).status_code for _ in range(2)] == [200, 200]
    flood = open_session(new_visitor_id())
    assert flood.status_code == 429
    assert flood.headers["ratelimit-policy"].startswith('"widget"')
    assert int(flood.headers["retry-after"]) >= 1
    assert flood.headers["access-control-allow-origin"] == SHOP  # refused before the chatbot was read
    preflight = httpx.options(sessions, headers={"origin": SHOP, "access-control-request-method": "POST"})
    assert preflight.status_code == 429


def test_a_visitor_flooding_the_chat_is_cut_while_another_visitor_is_answered(
    server: LocalServerProcess, database_url: str, fake_openrouter_server: FakeOpenRouter
) -> None:
    fake_openrouter_server.reset()
    fake_openrouter_server.script(Reply(chunks=["First."]), Reply(chunks=["Second."]), model=KNOWLEDGE_MODEL)
    chatbot = knowledge_chatbot(database_url, widget={"allowed_origins": [SHOP]})
    base = f"{server.base_url}/public/chatbots/{chatbot.public_id}"

    def session(visitor: str) -> dict[str, str]:
        opened = httpx.post(
            f"{base}/sessions",
            json={"visitor_id": visitor, "page_url": f"{SHOP}/"},
            headers={"origin": SHOP},
            timeout=30,
        )
        assert opened.status_code == 200, opened.text
        return {"origin": SHOP, "authorization": f"Bearer {opened.json()['session_token']}"}

    def chat(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{base}/chat", json={"content": QUESTION}, headers=headers, timeout=30)

    busy = session(new_visitor_id())  # the visitor's first of 2
    assert chat(busy).status_code == 200  # the second
    refused = chat(busy)  # the third: the visitor's bucket is empty
    assert refused.status_code == 429 and refused.json()["error"]["details"]["bucket"] == "widget_visitor"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["access-control-allow-origin"] == SHOP
    calm = session(new_visitor_id())  # same address (its 4th and 5th of 6), another visitor: answered
    answered = chat(calm)
    assert answered.status_code == 200 and "Second." in answered.text
