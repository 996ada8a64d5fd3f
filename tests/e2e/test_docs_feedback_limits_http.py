"""Guide feedback's rate limits over HTTP, as a reader sees them: anonymous readers share a bucket per
source address (every request here comes from 127.0.0.1), many simultaneous requests admit exactly the
burst, the next one is 429 with `Retry-After`, `RateLimit-Policy` and `RateLimit` and writes nothing, and a
signed-in reader counts in their own bucket. A local server of its own with tight limits (one token a
minute: nothing refills within the test)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from local.fake_openrouter import FakeOpenRouter
from tests.conftest import create_user
from tests.e2e.conftest import GENEROUS_RATE_LIMITS
from tests.e2e.limited_server import limited_server

pytestmark = pytest.mark.e2e

FEEDBACK_BURST, USER_BURST = 3, 2
LIMITS = {
    **GENEROUS_RATE_LIMITS,
    "ONEAI_FEEDBACK_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_FEEDBACK_RATE_LIMIT_BURST": str(FEEDBACK_BURST),
    "ONEAI_RATE_LIMIT_PER_MINUTE": "1",
    "ONEAI_RATE_LIMIT_BURST": str(USER_BURST),
}
SLUG = "plans-and-billing"
RATE_LIMIT = re.compile(r'^"(feedback|all)";r=(\d+);t=(\d+)$')


@pytest.fixture(scope="module")
def server(database_url: str, fake_openrouter_server: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    with limited_server("feedback-limits", database_url, fake_openrouter_server, LIMITS) as running:
        yield running
    # Every server of the session shares the database, and every test's address is 127.0.0.1: empty the
    # anonymous buckets this module drained (soft state, as after a restart) so later anonymous feedback
    # is judged by its own server's limits.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from oneai_private.source_rate_limits")


def stored(database_url: str, comment: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from public.guide_feedback where comment = %s", (comment,)).fetchone()
    assert row is not None
    return int(row[0])


def simultaneously(count: int, base_url: str, body: dict[str, object]) -> list[httpx.Response]:
    """`count` anonymous feedback requests released at once, each on its own connection."""
    clients = [httpx.Client(base_url=base_url, timeout=30) for _ in range(count)]
    barrier = threading.Barrier(count)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run(client: httpx.Client) -> None:
        client.get("/docs/getting-started")  # open the connection before the race (reads are not limited)
        barrier.wait()
        response = client.post("/docs/feedback", json=body)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for client in clients:
            client.close()
    return responses


def test_anonymous_feedback_past_the_burst_is_429_with_headers_and_writes_nothing(
    server: LocalServerProcess, database_url: str
) -> None:
    comment = f"Can I pay yearly? {uuid.uuid4()}"
    body = {"slug": SLUG, "helpful": False, "comment": comment}

    responses = simultaneously(10, server.base_url, body)

    assert sorted(r.status_code for r in responses) == [201] * FEEDBACK_BURST + [429] * (10 - FEEDBACK_BURST)
    assert stored(database_url, comment) == FEEDBACK_BURST
    for response in responses:
        assert response.headers["RateLimit-Policy"] == f'"feedback";q={FEEDBACK_BURST};w=180'
        match = RATE_LIMIT.match(response.headers["RateLimit"])
        assert match is not None and match.group(1) == "feedback"
    admitted_left = sorted(int(RATE_LIMIT.match(r.headers["RateLimit"]).group(2)) for r in responses)  # type: ignore[union-attr]
    assert admitted_left[-FEEDBACK_BURST:] == [0, 1, 2]  # each admitted request saw one token fewer

    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        refused = http.post("/docs/feedback", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit"].startswith('"feedback";r=0;')
        assert stored(database_url, comment) == FEEDBACK_BURST

        # Reading the guide is not limited; a signed-in reader counts in their own bucket, not the address's.
        assert http.get("/docs/search", params={"q": "cancel my subscription"}).status_code == 200
        reader = create_user(database_url)
        signed_in = [http.post("/docs/feedback", json=body, headers=reader.headers) for _ in range(USER_BURST + 1)]
    assert [r.status_code for r in signed_in] == [201] * USER_BURST + [429]
    assert signed_in[0].headers["RateLimit-Policy"] == f'"all";q={USER_BURST};w=120'
    assert signed_in[-1].json()["error"]["code"] == "RATE_LIMITED"
    assert stored(database_url, comment) == FEEDBACK_BURST + USER_BURST
