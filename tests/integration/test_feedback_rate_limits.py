"""Rate limits of guide feedback on the real database: anonymous readers count in a bucket of their source
address (`oneai_anon.take_source_rate_limit`, taken in the anonymous transaction's first round trip),
signed-in readers in their own `all` bucket. Many connections at once, another address, a refused
request, the stored key (never the address) and the sweep."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from docs.app import build_app
from fastapi.testclient import TestClient
from pydantic import SecretStr

from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.errors import NotFoundError, RateLimitedError
from oneai.guide import service
from oneai.guide.models import FeedbackReceipt, FeedbackRequest
from oneai.ratelimit import RateCheck, clear_idle_buckets, new_source_check, source_digest
from tests.conftest import AppUser
from tests.integration.test_rate_limits import held_up, rounds_with_a_refusal
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

pytestmark = pytest.mark.integration

SLUG = "quotas-and-resets"
# One request a minute refills nothing during a test: a drained bucket stays drained.
SLOW = 1
SAMPLE_EVENT = Path(__file__).resolve().parents[2] / "events" / "docs" / "leave-guide-feedback.json"


def an_address() -> str:
    """A source address of its own for each test (IPv6 documentation prefix), so tests never share a bucket."""
    suffix = uuid.uuid4().hex
    return f"2001:db8::{suffix[:4]}:{suffix[4:8]}"


def anonymous_check(db: Database, address: str, *, burst: int) -> RateCheck:
    limits = {"feedback_rate_limit_per_minute": SLOW, "feedback_rate_limit_burst": burst}
    check = new_source_check(db.settings.model_copy(update=limits), "feedback", address)
    assert check is not None
    return check


def leave_anonymously(db: Database, check: RateCheck, comment: str) -> FeedbackReceipt | None:
    """One anonymous request's feedback; None when it was refused (429)."""
    try:
        with db.anon_transaction(check) as conn:
            return service.submit_feedback(
                conn, FeedbackRequest(slug=SLUG, helpful=True, comment=comment), user_id=None
            )
    except RateLimitedError:
        return None


def stored_comments(database_url: str, comment: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("select count(*) from public.guide_feedback where comment = %s", (comment,)).fetchone()
    assert row is not None
    return int(row[0])


def source_rows(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "select source_hash, bucket, tat, xmin::text as xmin from oneai_private.source_rate_limits"
        ).fetchall()
    return [{"source_hash": bytes(r[0]), "bucket": r[1], "tat": r[2], "xmin": r[3]} for r in rows]


def test_given_many_connections_from_one_address_at_once_then_exactly_burst_are_stored(
    settings_with_db: Any, database_url: str
) -> None:
    address, comment = an_address(), f"race {uuid.uuid4()}"
    databases = [Database(settings_with_db) for _ in range(20)]
    barrier = threading.Barrier(len(databases))
    outcomes: list[bool] = []
    lock = threading.Lock()

    def one_request(db: Database) -> None:
        check = anonymous_check(db, address, burst=4)
        barrier.wait()
        stored = leave_anonymously(db, check, comment) is not None
        with lock:
            outcomes.append(stored)

    threads = [threading.Thread(target=one_request, args=(db,)) for db in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for db in databases:
            db.close()
    assert (outcomes.count(True), outcomes.count(False)) == (4, 16)
    assert stored_comments(database_url, comment) == 4  # the 16 refused wrote nothing


def test_given_one_addresss_empty_bucket_then_another_address_is_admitted(db: Database, database_url: str) -> None:
    drained, other, comment = an_address(), an_address(), f"two sources {uuid.uuid4()}"
    results = [leave_anonymously(db, anonymous_check(db, drained, burst=2), comment) for _ in range(3)]
    assert [r is not None for r in results] == [True, True, False]
    assert leave_anonymously(db, anonymous_check(db, other, burst=2), comment) is not None
    assert stored_comments(database_url, comment) == 3


def test_given_a_refused_request_then_nothing_is_written_and_it_says_when_to_retry(
    db: Database, database_url: str
) -> None:
    address, comment = an_address(), f"refused {uuid.uuid4()}"
    assert leave_anonymously(db, anonymous_check(db, address, burst=1), comment) is not None
    before = source_rows(database_url)
    refused = anonymous_check(db, address, burst=1)
    with pytest.raises(RateLimitedError) as raised, db.anon_transaction(refused) as conn:
        service.submit_feedback(conn, FeedbackRequest(slug=SLUG, helpful=False, comment=comment), user_id=None)
    assert source_rows(database_url) == before  # same row versions: the bucket was not even locked
    assert stored_comments(database_url, comment) == 1
    headers = refused.headers()
    assert headers["RateLimit-Policy"] == '"feedback";q=1;w=60'
    assert headers["RateLimit"].startswith('"feedback";r=0;t=')
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert raised.value.details["bucket"] == "feedback"


def test_given_an_admitted_request_for_an_unknown_page_then_its_token_stays_taken(db: Database) -> None:
    address = an_address()
    with pytest.raises(NotFoundError), db.anon_transaction(anonymous_check(db, address, burst=2)) as conn:
        service.submit_feedback(conn, FeedbackRequest(slug="no-such-page", helpful=True), user_id=None)
    check = anonymous_check(db, address, burst=2)
    assert leave_anonymously(db, check, "after a 404") is not None
    assert check.outcome is not None and check.outcome.remaining == 0


def test_the_bucket_is_keyed_by_a_keyed_hash_never_by_the_address(db: Database, database_url: str) -> None:
    address = an_address()
    assert leave_anonymously(db, anonymous_check(db, address, burst=3), "keyed") is not None
    digest = hashlib.sha256(address.encode()).digest()
    with psycopg.connect(database_url, autocommit=True) as conn:
        dump = json.dumps(
            [[str(v) for v in row] for row in conn.execute("select * from oneai_private.source_rate_limits")]
        )
    assert address not in dump and digest.hex() not in dump
    assert digest not in {r["source_hash"] for r in source_rows(database_url)}
    # The key is the database's own: readers cannot reach it or the buckets.
    with psycopg.connect(database_url, autocommit=False) as conn:
        conn.execute("set local role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select key from oneai_private.source_hash_key")


def test_anonymous_callers_reach_the_check_and_nothing_else_of_the_private_schemas(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        schemas = conn.execute(
            "select nspname, has_schema_privilege('anon', oid, 'usage') from pg_namespace"
            " where nspname in ('oneai_private', 'oneai_anon') order by nspname"
        ).fetchall()
        callable_by_anon = conn.execute(
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('oneai_private', 'oneai_anon') and has_function_privilege('anon', p.oid, 'execute')"
            " order by 1"
        ).fetchall()
    assert schemas == [("oneai_anon", True), ("oneai_private", False)]
    # the source check, and the widget's public routes (20261127000000_widget.sql), each acting only on
    # the named visitor's rows of the named chatbot
    assert callable_by_anon == [
        ("oneai_anon.take_source_rate_limit(text,text,integer,integer)",),
        ("oneai_anon.widget_chatbot(text)",),
        ("oneai_anon.widget_conversation_messages(uuid,text,uuid)",),
        ("oneai_anon.widget_open_session(uuid,jsonb,uuid)",),
        ("oneai_anon.widget_rate_conversation(uuid,text,uuid,integer,text)",),
    ]


def test_given_source_buckets_that_are_full_again_then_the_sweep_clears_them(
    db: Database, database_url: str
) -> None:
    refilled, busy = an_address(), an_address()
    assert leave_anonymously(db, anonymous_check(db, refilled, burst=5), "sweep") is not None
    assert leave_anonymously(db, anonymous_check(db, busy, burst=5), "sweep") is not None
    rows_before = {r["source_hash"] for r in source_rows(database_url)}
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Every source bucket but the busy one's is full again (the busy one was taken from last).
        conn.execute(
            "update oneai_private.source_rate_limits set tat = now() - interval '1 second'"
            " where tat < (select max(tat) from oneai_private.source_rate_limits)"
        )
    assert clear_idle_buckets(db) >= 1
    rows_after = {r["source_hash"] for r in source_rows(database_url)}
    assert len(rows_after) == 1 and rows_after < rows_before


# --- through the deployed entry point and the docs app -------------------------------------------------


def anonymous_event(address: str, comment: str) -> dict[str, Any]:
    """The sample feedback event as API Gateway sends it for an anonymous reader at `address`."""
    event: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text(encoding="utf-8"))
    event["headers"].pop("Authorization")
    event["multiValueHeaders"].pop("Authorization")
    event["requestContext"]["identity"]["sourceIp"] = address
    event["body"] = json.dumps({"slug": SLUG, "helpful": True, "comment": comment})
    return event


@pytest.fixture
def docs_handler(database_url: str) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    with (
        like_a_lambda_process(database_url),
        override_settings(feedback_rate_limit_per_minute=SLOW, feedback_rate_limit_burst=2),
    ):
        from docs.handler import lambda_handler

        yield lambda event: lambda_handler(event, FakeLambdaContext("docs"))


def test_the_lambda_keys_anonymous_feedback_by_api_gateways_source_ip(
    docs_handler: Callable[[dict[str, Any]], dict[str, Any]], database_url: str
) -> None:
    first, second, comment = an_address(), an_address(), f"lambda {uuid.uuid4()}"
    statuses = [docs_handler(anonymous_event(first, comment))["statusCode"] for _ in range(3)]
    assert statuses == [201, 201, 429]
    # The same caller claiming another address in X-Forwarded-For is still the same source.
    spoofed = anonymous_event(first, comment)
    spoofed["headers"]["X-Forwarded-For"] = second
    spoofed["multiValueHeaders"]["X-Forwarded-For"] = [second]
    refused = docs_handler(spoofed)
    assert refused["statusCode"] == 429
    assert json.loads(refused["body"])["error"]["code"] == "RATE_LIMITED"
    headers = {k.lower(): v for k, v in refused["headers"].items()}
    assert {"retry-after", "ratelimit", "ratelimit-policy"} <= headers.keys()
    assert docs_handler(anonymous_event(second, comment))["statusCode"] == 201
    assert stored_comments(database_url, comment) == 3


def test_signed_in_feedback_counts_in_the_readers_own_bucket(
    settings_with_db: Any, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    reader = make_user()
    body = {"slug": SLUG, "helpful": False, "comment": f"signed in {uuid.uuid4()}"}
    with (
        override_settings(database_url=SecretStr(database_url), rate_limit_per_minute=SLOW, rate_limit_burst=2),
        TestClient(build_app()) as client,
    ):
        responses = [client.post("/docs/feedback", json=body, headers=reader.headers) for _ in range(3)]
        anonymous = client.post("/docs/feedback", json=body)
    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[0].headers["RateLimit-Policy"] == '"all";q=2;w=120'
    assert responses[0].headers["RateLimit"].startswith('"all";r=1;')
    assert responses[2].json()["error"]["code"] == "RATE_LIMITED"
    assert anonymous.status_code == 201  # the reader's empty bucket is theirs alone
    assert anonymous.headers["RateLimit-Policy"].startswith('"feedback";')
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from oneai_private.rate_limits where user_id = %s and bucket = 'all'", (reader.id,)
        ).fetchone()
    assert row is not None and row[0] == 1
    assert stored_comments(database_url, body["comment"]) == 3


def test_given_a_new_address_when_its_first_requests_race_then_none_is_refused(settings_with_db: Any) -> None:
    # As for the user buckets (test_rate_limits.py): the first request of an address makes its row; the
    # requests racing it take from that row once it is committed.
    limits = {"feedback_rate_limit_per_minute": 60_000, "feedback_rate_limit_burst": 1_000}

    def admit_one(db: Database, address: object) -> bool:
        check = new_source_check(db.settings.model_copy(update=limits), "feedback", str(address))
        assert check is not None
        try:
            with db.anon_transaction(check):
                return True
        except RateLimitedError:
            return False

    assert rounds_with_a_refusal(settings_with_db, an_address, admit_one) == []


def taken_from(address: str, *, burst: int) -> Callable[[psycopg.Connection[Any]], bool]:
    """One token of `address`'s feedback bucket, taken as an anonymous request takes it; True when admitted."""

    def take(conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "select admitted from oneai_anon.take_source_rate_limit(%s, 'feedback', %s, %s)",
            (source_digest(address), SLOW, burst),
        ).fetchone()
        return row is not None and bool(row[0])

    return take


@pytest.mark.parametrize("burst", [1, 2])
def test_given_a_request_held_up_while_another_from_its_address_takes_a_token_then_the_bucket_answers_it_truly(
    db: Database, database_url: str, burst: int
) -> None:
    # GIVEN a full bucket, and an anonymous request whose clock was read before another's from its address
    address, comment = an_address(), f"held up {uuid.uuid4()}"
    late = anonymous_check(db, address, burst=burst)
    # WHEN the other request takes a token first
    receipt = held_up(
        database_url,
        "oneai_private.source_rate_limits",
        lambda: leave_anonymously(db, late, comment),
        taken_from(address, burst=burst),
    )
    # THEN with a burst of two the late one gets the second token; with one, it is told to come back
    # when the token does: within the minute, not after it
    assert (receipt is not None) == (burst == 2)
    headers = late.headers()
    assert headers["RateLimit"] == f'"feedback";r=0;t={60 * burst}'
    if burst == 1:
        assert headers["Retry-After"] == "60"
