"""Rate limits at the service level: the GCRA bucket of `oneai_private.take_rate_limit`, taken by the first
user transaction of a request, against the real database, from many connections at once."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import pytest

from oneai.auth import Principal
from oneai.db import conversations as conversation_rows
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, NotFoundError, RateLimitedError
from oneai.ratelimit import RateCheck, RatePolicy, clear_idle_buckets
from tests.conftest import AppUser

pytestmark = pytest.mark.integration

# One request a minute refills nothing during a test: a drained bucket stays drained.
SLOW = 1
Outcome = TypeVar("Outcome")


def requesting(principal: Principal, bucket: str = "all", *, per_minute: int = SLOW, burst: int = 5) -> Principal:
    """The principal of one request, with its own rate check (as the web dependency makes it)."""
    check = RateCheck(RatePolicy(bucket, per_minute, burst))  # type: ignore[arg-type]
    return dataclasses.replace(principal, rate_check=check)


def bucket_row(database_url: str, user_id: uuid.UUID, bucket: str = "all") -> dict[str, Any] | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select xmin::text as xmin, tat from oneai_private.rate_limits where user_id = %s and bucket = %s",
            (user_id, bucket),
        ).fetchone()
    return None if row is None else {"xmin": row[0], "tat": row[1]}


def admit(db: Database, principal: Principal) -> bool:
    try:
        with db.user_transaction(principal):
            return True
    except RateLimitedError:
        return False


def at_once(count: int, work: Callable[[], bool]) -> list[bool]:
    """`count` threads, released together, each on its own connection."""
    barrier = threading.Barrier(count)
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        outcome = work()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_given_a_full_bucket_when_many_connections_ask_at_once_then_exactly_burst_are_admitted(
    settings_with_db: Any, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    databases = [Database(settings_with_db) for _ in range(24)]
    slots = iter(databases)
    lock = threading.Lock()

    def one_request() -> bool:
        with lock:
            db = next(slots)
        return admit(db, requesting(user.principal, burst=5))

    try:
        results = at_once(24, one_request)
    finally:
        for db in databases:
            db.close()
    assert results.count(True) == 5
    assert results.count(False) == 19


def test_given_a_refused_request_then_nothing_is_written_and_retry_after_is_whole_seconds(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    # 60 a minute, burst 2: a token every second.
    assert admit(db, requesting(user.principal, per_minute=60, burst=2))
    assert admit(db, requesting(user.principal, per_minute=60, burst=2))
    before = bucket_row(database_url, user.id)
    refused = requesting(user.principal, per_minute=60, burst=2)
    with pytest.raises(RateLimitedError) as raised, db.user_transaction(refused):
        pass
    assert bucket_row(database_url, user.id) == before  # same row version: not even locked for update
    assert refused.rate_check is not None and refused.rate_check.outcome is not None
    headers = refused.rate_check.headers()
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit-Policy"] == '"all";q=2;w=2'
    assert headers["RateLimit"].startswith('"all";r=0;t=')
    assert raised.value.details == {"bucket": "all", "retry_after": 1}


def test_given_one_callers_empty_bucket_then_another_caller_and_the_chat_bucket_are_untouched(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, bob = make_user(), make_user()
    assert [admit(db, requesting(alice.principal, burst=3)) for _ in range(4)] == [True, True, True, False]
    assert admit(db, requesting(bob.principal, burst=3))
    assert admit(db, requesting(alice.principal, "chat", burst=3))


def test_given_an_admitted_request_that_fails_then_its_work_is_undone_but_its_token_stays_taken(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    with pytest.raises(NotFoundError), db.user_transaction(requesting(user.principal, burst=2)) as conn:
        conversation_rows.insert_conversation(conn, user_id=user.id, title="undone", metadata={})
        raise NotFoundError()
    with db.user_transaction(user.principal) as conn:
        row = conn.execute("select count(*) as n from public.conversations").fetchone()
    assert row is not None and row["n"] == 0
    check = requesting(user.principal, burst=2)
    assert admit(db, check)
    assert check.rate_check is not None and check.rate_check.outcome is not None
    assert check.rate_check.outcome.remaining == 0  # the failed request's token was kept


def test_given_one_request_then_only_its_first_transaction_takes_a_token(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    principal = requesting(user.principal, burst=1)
    for _ in range(3):  # a chat turn opens several transactions: one request, one token
        with db.user_transaction(principal):
            pass
    assert not admit(db, requesting(user.principal, burst=1))


def test_given_an_unknown_or_suspended_caller_then_no_bucket_is_written(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    suspended = make_user(suspended=True)
    with pytest.raises(ForbiddenError), db.user_transaction(requesting(suspended.principal)):
        pass
    assert bucket_row(database_url, suspended.id) is None


def test_given_buckets_that_are_full_again_then_the_sweep_clears_them_and_keeps_the_others(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    refilled, busy = make_user(), make_user()
    assert admit(db, requesting(refilled.principal, burst=5))
    assert admit(db, requesting(busy.principal, burst=5))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update oneai_private.rate_limits set tat = now() - interval '1 second' where user_id = %s",
            (refilled.id,),
        )
    assert clear_idle_buckets(db) >= 1
    assert bucket_row(database_url, refilled.id) is None
    assert bucket_row(database_url, busy.id) is not None


def rounds_with_a_refusal(
    settings: Any, new_bucket: Callable[[], object], admit_one: Callable[[Database, object], bool]
) -> list[int]:
    """150 rounds, each on a new bucket (`new_bucket()` names it): 6 connections ask for one request each,
    started a few milliseconds apart, so that the first one commits while the others are between their
    statements. The rounds where any request was refused."""
    databases = [Database(settings) for _ in range(6)]

    def request_after(db: Database, bucket: object, delay: float) -> bool:
        time.sleep(delay)
        return admit_one(db, bucket)

    refused_rounds: list[int] = []
    try:
        for round_number in range(150):
            bucket = new_bucket()
            step = (0.0005, 0.001, 0.0015, 0.002, 0.003)[round_number % 5]
            with concurrent.futures.ThreadPoolExecutor(len(databases)) as pool:
                delays = [i * step for i in range(len(databases))]
                outcomes = list(pool.map(request_after, databases, [bucket] * len(databases), delays))
            if not all(outcomes):
                refused_rounds.append(round_number)
    finally:
        for db in databases:
            db.close()
    return refused_rounds


def test_given_a_new_bucket_when_many_first_requests_race_then_none_is_refused(
    settings_with_db: Any, make_user: Callable[..., AppUser]
) -> None:
    # A bucket's row is made by its first request. Requests racing it must take from that row once it is
    # there, never read its sudden appearance as an empty bucket (three readers resuming one reply at once
    # were refused so, with a burst of 100000).
    def admit_one(db: Database, principal: object) -> bool:
        assert isinstance(principal, Principal)
        return admit(db, requesting(principal, per_minute=60_000, burst=1_000))

    assert rounds_with_a_refusal(settings_with_db, lambda: make_user().principal, admit_one) == []


def held_up(
    database_url: str,
    table: str,
    request: Callable[[], Outcome],
    take_meanwhile: Callable[[psycopg.Connection[Any]], bool],
) -> Outcome:
    """`request` (a rate-checked transaction) held up between its clock reading and its bucket's UPDATE,
    while `take_meanwhile` (a token taken as another request takes it) reads the clock later and commits
    first: what a lock wait or a busy CPU does to simultaneous requests. A transaction holding `table`
    (the bucket table) in EXCLUSIVE mode holds the request up; the token is taken in that transaction."""
    with (
        psycopg.connect(database_url) as blocker,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        psycopg.connect(database_url, autocommit=True) as watcher,
    ):
        blocker.execute(f"lock table {table} in exclusive mode")
        pending = pool.submit(request)
        deadline = time.monotonic() + 10
        waiting = "select exists (select 1 from pg_locks where relation = %s::regclass and not granted)"
        while watcher.execute(waiting, (table,)).fetchone() != (True,):
            assert time.monotonic() < deadline and not pending.done(), "the request never reached its bucket"
            time.sleep(0.01)
        time.sleep(0.2)  # the other request reads the clock this much later
        assert take_meanwhile(blocker)
        blocker.commit()
        return pending.result(timeout=30)


def taken_as(user: AppUser, *, burst: int) -> Callable[[psycopg.Connection[Any]], bool]:
    """One token of `user`'s `all` bucket, taken as a request of that user takes it; True when admitted."""

    def take(conn: psycopg.Connection[Any]) -> bool:
        conn.execute("select set_config('request.jwt.claim.sub', %s, true)", (str(user.id),))
        row = conn.execute(
            "select admitted from oneai_private.take_rate_limit('all', %s, %s)", (SLOW, burst)
        ).fetchone()
        return row is not None and bool(row[0])

    return take


@pytest.mark.parametrize("burst", [1, 2])
def test_given_a_request_held_up_while_another_takes_a_token_then_the_bucket_answers_it_truly(
    db: Database, database_url: str, make_user: Callable[..., AppUser], burst: int
) -> None:
    # GIVEN a full bucket (one token a minute), and a request whose clock was read before another request's
    user = make_user()
    late = requesting(user.principal, per_minute=SLOW, burst=burst)
    # WHEN the other request takes a token first
    admitted = held_up(
        database_url, "oneai_private.rate_limits", lambda: admit(db, late), taken_as(user, burst=burst)
    )
    # THEN with a burst of two the late one takes the second token (two requests at once fit in it); with
    # one, it is refused and told to come back when the token does: within the minute, not after it
    assert admitted == (burst == 2)
    assert late.rate_check is not None
    headers = late.rate_check.headers()
    assert headers["RateLimit-Policy"] == f'"all";q={burst};w={60 * burst}'
    assert headers["RateLimit"] == f'"all";r=0;t={60 * burst}'
    if burst == 1:
        assert headers["Retry-After"] == "60"
