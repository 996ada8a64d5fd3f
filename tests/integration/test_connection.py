"""The container's connection: re-opened after the server drops it, 503 when the database is gone,
401/403 for unknown/suspended users, dev-mode provisioning, quota reset times, no leaking scope."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from oneai.account.provisioning import provision_dev_user
from oneai.auth import Principal, authenticate
from oneai.config import override_settings
from oneai.conversations import service
from oneai.conversations.models import ConversationCreate
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, UnauthorizedError, UnavailableError
from tests.conftest import create_user, token_for

FREE_QUOTAS = [
    ("image_generation", 5, "3hour"),
    ("large_messages", 20, "monthly"),
    ("small_messages", 100, "monthly"),
]


def terminate(admin_url: str, pid: int | None) -> None:
    """What an idle timeout, a failover or a pooler restart does to our session."""
    assert pid is not None
    with psycopg.connect(admin_url, autocommit=True) as admin:
        # the timeout form waits until the backend is really gone
        assert admin.execute("select pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


def unknown_principal(email: str | None = None) -> Principal:
    user_id = uuid.uuid4()
    return authenticate(f"Bearer {token_for(user_id, email or f'{user_id.hex[:10]}@example.test')}")


def first_of_next_month(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


@pytest.fixture
def dead_db() -> Iterator[Database]:
    """Settings whose database is a closed port on this machine."""
    url = SecretStr("host=127.0.0.1 port=1 dbname=x user=x password=hunter2")
    with override_settings(database_url=url, db_connect_timeout_seconds=2) as settings:
        database = Database(settings)
        yield database
        database.close()


def test_a_dropped_connection_is_reopened_on_the_next_request(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    # GIVEN a warm container whose connection the server then drops
    with db.user_transaction(user.principal) as conn:
        conn.execute("select 1")
    dropped = db.backend_pid()
    terminate(database_url, dropped)
    # WHEN the next request comes THEN it works, on a new connection, as the same user
    with db.user_transaction(user.principal) as conn:
        row = conn.execute("select auth.uid() as uid, current_user as role").fetchone()
    assert row == {"uid": user.id, "role": "authenticated"}
    assert db.backend_pid() not in (None, dropped)


def test_a_connection_killed_mid_transaction_is_a_503_and_nothing_of_it_is_kept(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with pytest.raises(UnavailableError) as raised, db.user_transaction(user.principal) as conn:
        service.create_conversation(conn, user.id, ConversationCreate(title="lost"))
        terminate(database_url, conn.info.backend_pid)
        conn.execute("select 1")
    assert raised.value.status == 503
    # THEN the next request works and the half-done work is not there
    with db.user_transaction(user.principal) as conn:
        titles = [r["title"] for r in conn.execute("select title from public.conversations")]
        service.create_conversation(conn, user.id, ConversationCreate(title="kept"))
    assert titles == []
    with db.user_transaction(user.principal) as conn:
        assert [r["title"] for r in conn.execute("select title from public.conversations")] == ["kept"]


def test_an_unreachable_database_is_a_503_not_a_driver_error(dead_db: Database, make_user: Any) -> None:
    user = make_user()
    for open_transaction in (
        lambda: dead_db.user_transaction(user.principal),
        dead_db.anon_transaction,
        dead_db.service_transaction,
    ):
        with pytest.raises(UnavailableError) as raised, open_transaction():
            pass
        error = raised.value
        assert not isinstance(error, psycopg.Error)
        assert (error.status, error.code) == (503, "UNAVAILABLE")
        # the message shown to clients says nothing about where the database is or how to log in
        assert "hunter2" not in str(error) and "127.0.0.1" not in str(error)
    assert dead_db.backend_pid() is None


def test_a_statement_over_the_timeout_is_a_503_and_the_next_request_works(
    settings_with_db: Any, make_user: Any
) -> None:
    user = make_user()
    with override_settings(db_statement_timeout_ms=200) as settings:
        database = Database(settings)
        try:
            with pytest.raises(UnavailableError), database.user_transaction(user.principal) as conn:
                conn.execute("select pg_sleep(2)")
            with database.user_transaction(user.principal) as conn:
                assert conn.execute("select current_setting('statement_timeout') as t").fetchone() == {
                    "t": "200ms"
                }
        finally:
            database.close()


def test_an_unknown_user_is_401_and_a_suspended_user_is_403(db: Database, make_user: Any) -> None:
    # GIVEN a valid token whose subject has no users row
    with pytest.raises(UnauthorizedError) as unknown, db.user_transaction(unknown_principal()):
        pass
    assert unknown.value.status == 401
    # GIVEN a suspended user
    suspended = make_user(suspended=True)
    with pytest.raises(ForbiddenError) as forbidden, db.user_transaction(suspended.principal):
        pass
    assert forbidden.value.status == 403
    # AND neither left the connection unusable
    active = make_user()
    with db.user_transaction(active.principal) as conn:
        assert conn.execute("select count(*) as n from public.users").fetchone() == {"n": 1}


def test_dev_mode_provisions_an_unknown_subject_with_the_free_quotas(db: Database, settings_with_db: Any) -> None:
    principal = unknown_principal()
    # GIVEN outside dev mode, the subject is unknown
    with pytest.raises(UnauthorizedError), db.user_transaction(principal):
        pass
    # WHEN dev mode sees it for the first time
    dev = Database(settings_with_db, provision_user=provision_dev_user)
    try:
        with dev.user_transaction(principal) as conn:
            me = conn.execute("select id, email, subscription_tier, provider_type from public.users").fetchall()
            quotas = conn.execute(
                "select quota_key, quota_limit, reset_frequency from public.usage_quotas"
                " where used_count = 0 order by quota_key"
            ).fetchall()
        # a second request reuses the row
        with dev.user_transaction(principal) as conn:
            assert conn.execute("select count(*) as n from public.users").fetchone() == {"n": 1}
    finally:
        dev.close()
    # THEN it has a users row on the free tier and the three free quotas
    assert me == [
        {"id": principal.user_id, "email": principal.email, "subscription_tier": "free", "provider_type": "email"}
    ]
    assert [(q["quota_key"], q["quota_limit"], q["reset_frequency"]) for q in quotas] == FREE_QUOTAS


def test_a_new_auth_user_gets_free_quotas_with_the_next_reset_times(db: Database, database_url: str) -> None:
    before = datetime.now(UTC)
    user = create_user(database_url)
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select quota_key, quota_limit, reset_frequency, used_count, last_reset_at, next_reset_at"
            " from public.usage_quotas where user_id = %s order by quota_key",
            (user.id,),
        ).fetchall()
    assert [(r["quota_key"], r["quota_limit"], r["reset_frequency"]) for r in rows] == FREE_QUOTAS
    for row in rows:
        assert row["used_count"] == 0
        assert before - timedelta(seconds=5) <= row["last_reset_at"] <= datetime.now(UTC)
        if row["reset_frequency"] == "3hour":
            assert row["next_reset_at"] == row["last_reset_at"] + timedelta(hours=3)
        else:
            assert row["next_reset_at"] == first_of_next_month(row["last_reset_at"])


@pytest.mark.parametrize(
    ("frequency", "last_reset", "expected"),
    [
        ("daily", "2026-03-10 23:59:59+00", "2026-03-11 00:00:00+00"),
        ("daily", "2026-03-11 00:00:00+00", "2026-03-12 00:00:00+00"),
        ("daily", "2026-03-10 23:30:00-05", "2026-03-12 00:00:00+00"),  # 04:30 UTC on the 11th
        ("daily", "2026-03-11 02:00:00+05:30", "2026-03-11 00:00:00+00"),  # 20:30 UTC on the 10th
        ("monthly", "2026-01-31 12:00:00+00", "2026-02-01 00:00:00+00"),
        ("monthly", "2026-02-01 00:00:00+00", "2026-03-01 00:00:00+00"),
        ("monthly", "2028-02-29 23:59:59+00", "2028-03-01 00:00:00+00"),
        ("monthly", "2026-12-15 08:00:00+00", "2027-01-01 00:00:00+00"),
        ("monthly", "2026-12-31 23:59:59.999+00", "2027-01-01 00:00:00+00"),
        ("3hour", "2026-03-10 22:30:00+00", "2026-03-11 01:30:00+00"),
        ("3hour", "2026-12-31 23:00:00+00", "2027-01-01 02:00:00+00"),
    ],
)
def test_next_quota_reset_boundaries_in_utc(db: Database, frequency: str, last_reset: str, expected: str) -> None:
    with db.service_transaction() as conn:
        # the session time zone (India, say) must not move the boundaries
        conn.execute("set local timezone = 'Asia/Kolkata'")
        row = conn.execute(
            "select public.next_quota_reset(%s, %s::timestamptz) = %s::timestamptz as ok,"
            " public.next_quota_reset(%s, %s::timestamptz)::text as got",
            (frequency, last_reset, expected, frequency, last_reset),
        ).fetchone()
    assert row is not None and row["ok"], row


def test_transaction_scopes_do_not_leak_into_the_next_transaction(db: Database, make_user: Any) -> None:
    user, other = make_user(), make_user()
    # GIVEN a user transaction that committed and one that failed
    with db.user_transaction(user.principal) as conn:
        assert conn.execute("select auth.uid() as uid").fetchone() == {"uid": user.id}
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(user.principal) as conn:
        conn.execute("update public.usage_quotas set used_count = 0")
    # WHEN service work runs next on the same connection
    with db.service_transaction() as conn:
        row = conn.execute(
            "select current_user as role, auth.uid() as uid,"
            " current_setting('request.jwt.claim.sub', true) as sub,"
            " (select count(*) from public.users where id in (%s, %s)) as visible",
            (user.id, other.id),
        ).fetchone()
    # THEN it is the service role, nobody's identity, and not narrowed by RLS
    assert row == {"role": "service_role", "uid": None, "sub": "", "visible": 2}
    with db.anon_transaction() as conn:
        assert conn.execute("select current_user as role, auth.uid() as uid").fetchone() == {
            "role": "anon",
            "uid": None,
        }
    # AND outside any transaction scope the session itself (the same connection, back in the pool)
    # holds none of those settings
    raw = conn
    try:
        session = raw.execute(
            "select current_user = session_user as own_role,"
            " coalesce(current_setting('request.jwt.claim.sub', true), '') as sub,"
            " coalesce(current_setting('request.jwt.claims', true), '') as claims"
        ).fetchone()
    finally:
        raw.rollback()
    assert session == {"own_role": True, "sub": "", "claims": ""}


def test_one_request_at_a_time_reuses_one_connection_and_overlapping_ones_get_their_own(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    # GIVEN requests one after another, as a Lambda container serves them: one connection, reused
    used = set()
    for _ in range(5):
        with db.user_transaction(user.principal) as conn:
            used.add(conn.info.backend_pid)
    assert len(used) == 1
    # WHEN six transactions overlap (threads of a local ASGI server)
    barrier = threading.Barrier(6)
    overlapping: set[int] = set()

    def work() -> None:
        with db.user_transaction(user.principal) as conn:
            barrier.wait(timeout=10)
            overlapping.add(conn.info.backend_pid)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN each had its own connection, and afterwards only a few stay open
    assert len(overlapping) == 6
    with psycopg.connect(database_url) as admin:
        open_now = admin.execute(
            "select count(*) from pg_stat_activity where application_name = 'oneai' and pid = any(%s)",
            (list(overlapping | used),),
        ).fetchone()
    assert open_now is not None and open_now[0] <= 4
