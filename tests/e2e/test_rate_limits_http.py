"""Rate limits over HTTP, as a client sees them: many simultaneous requests on many connections against a
full bucket, the 429 with `Retry-After`, `RateLimit-Policy` and `RateLimit`, the chat bucket, and one
caller's limit leaving the others alone. A local server of its own, with tight limits (no refill within a
test: one token a minute)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL
from tests.e2e.limited_server import limited_server

pytestmark = pytest.mark.e2e

BURST, CHAT_BURST = 4, 2
LIMITS = {
    "ONEAI_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_RATE_LIMIT_BURST": str(BURST),
    "ONEAI_CHAT_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_CHAT_RATE_LIMIT_BURST": str(CHAT_BURST),
}
RATE_LIMIT = re.compile(r'^"(all|chat)";r=(\d+);t=(\d+)$')


@pytest.fixture(scope="module")
def server(database_url: str, fake_openrouter_server: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    with limited_server("rate-limits", database_url, fake_openrouter_server, LIMITS) as running:
        yield running


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


def simultaneously(
    count: int, base_url: str, send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """`count` requests released at once, each on its own connection (its own client)."""
    clients = [httpx.Client(base_url=base_url, timeout=30) for _ in range(count)]
    barrier = threading.Barrier(count)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run(client: httpx.Client) -> None:
        client.get("/chat/health")  # open the connection before the race
        barrier.wait()
        response = send(client)
        response.read()
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for client in clients:
            client.close()
    assert len(responses) == count
    return responses


def remaining(response: httpx.Response, bucket: str) -> int:
    match = RATE_LIMIT.match(response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    assert match.group(1) == bucket
    return int(match.group(2))


def assert_refused(response: httpx.Response, bucket: str, burst: int) -> None:
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60  # one token a minute
    assert response.headers["ratelimit-policy"] == f'"{bucket}";q={burst};w={burst * 60}'
    assert remaining(response, bucket) == 0


def test_given_a_full_bucket_when_many_requests_arrive_at_once_then_exactly_burst_are_admitted(
    server: LocalServerProcess, alice: AppUser
) -> None:
    responses = simultaneously(16, server.base_url, lambda c: c.get("/user/quota", headers=alice.headers))
    admitted = [r for r in responses if r.status_code == 200]
    assert len(admitted) == BURST
    # Every admitted answer says how many are left: together they count the bucket down.
    assert sorted(remaining(r, "all") for r in admitted) == list(range(BURST))
    for response in admitted:
        assert response.headers["ratelimit-policy"] == f'"all";q={BURST};w={BURST * 60}'
    for response in responses:
        if response.status_code != 200:
            assert_refused(response, "all", BURST)


def test_given_one_caller_is_refused_then_another_caller_is_still_admitted(
    server: LocalServerProcess, alice: AppUser, database_url: str
) -> None:
    bob = create_user(database_url)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        answers = [client.get("/user/profile", headers=alice.headers).status_code for _ in range(BURST + 1)]
        assert answers == [200] * BURST + [429]
        response = client.get("/user/profile", headers=bob.headers)
        assert response.status_code == 200
        assert remaining(response, "all") == BURST - 1


def count_rows(database_url: str, user: AppUser) -> tuple[int, int, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select (select count(*) from public.conversations where user_id = %(u)s),"
            " (select count(*) from public.chat_messages where user_id = %(u)s and role = 'user'),"
            " (select used_count from public.usage_quotas where user_id = %(u)s and quota_key = 'small_messages')",
            {"u": user.id},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_given_a_full_chat_bucket_when_many_replies_are_asked_at_once_then_exactly_its_burst_start_and_the_refused_write_nothing(
    server: LocalServerProcess, alice: AppUser, database_url: str, openrouter: FakeOpenRouter
) -> None:
    body: dict[str, Any] = {"model": CHAT_MODEL, "content": "hello there"}
    responses = simultaneously(
        8, server.base_url, lambda c: c.post("/chat/stream", json=body, headers=alice.headers)
    )
    started = [r for r in responses if r.status_code == 200]
    assert len(started) == CHAT_BURST
    for response in started:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert '"type":"finish"' in response.text
        assert remaining(response, "chat") in range(CHAT_BURST)
    for response in responses:
        if response.status_code != 200:
            assert_refused(response, "chat", CHAT_BURST)
    # The refused requests left no conversation, message or quota use behind.
    assert count_rows(database_url, alice) == (CHAT_BURST, CHAT_BURST, CHAT_BURST)
    # Chat requests count in the chat bucket only: the caller's `all` bucket is still full.
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.get("/user/quota", headers=alice.headers)
    assert response.status_code == 200
    assert remaining(response, "all") == BURST - 1


def test_given_the_limits_then_unauthenticated_requests_are_refused_before_any_bucket(
    server: LocalServerProcess,
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.get("/user/quota")
    assert response.status_code == 401
    assert "ratelimit" not in response.headers
