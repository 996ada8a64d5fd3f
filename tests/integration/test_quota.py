"""Quotas: reserve up to the limit then 429 with its details, refund only within the reservation's window,
settle gives back what was not used, due resets applied by the reserve and by the status read without
any sweep, and the functions act on the caller's own rows only (never anon's, never directly)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from oneai.db.connection import Database
from oneai.errors import QuotaExceededError, ValidationError
from oneai.quota import service as quota
from oneai.quota.tiers import QUOTA_KEYS, TIERS
from tests.integration.test_connection import first_of_next_month

FUNCTIONS = (
    "oneai_private.reserve_quota(text, integer)",
    "oneai_private.refund_quota(text, integer, timestamptz)",
    "oneai_private.current_quotas()",
)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def stored(database_url: str, user_id: UUID, quota_key: str) -> dict[str, Any]:
    """The row as it is in the table (admin, no reset applied)."""
    with psycopg.connect(database_url, row_factory=dict_row) as admin:
        row = admin.execute(
            "select used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at, warning_level,"
            " last_usage_at, updated_at from public.usage_quotas where user_id = %s and quota_key = %s",
            (user_id, quota_key),
        ).fetchone()
    assert row is not None
    return row


def set_row(database_url: str, user_id: UUID, quota_key: str, **values: Any) -> None:
    """What an operator (or time passing) does to a quota row."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)) for column, value in values.items()
    )
    with psycopg.connect(database_url, autocommit=True) as admin:
        updated = admin.execute(
            sql.SQL("update public.usage_quotas set {} where user_id = %s and quota_key = %s").format(assignments),
            (user_id, quota_key),
        )
        assert updated.rowcount == 1


def window_is_over(database_url: str, user_id: UUID, quota_key: str) -> None:
    """The quota's window ended a minute ago and no sweep has run."""
    set_row(database_url, user_id, quota_key, next_reset_at=datetime.now(UTC) - timedelta(minutes=1))


def transaction_now(conn: Any) -> datetime:
    row = conn.execute("select now() as now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now


def test_the_tiers_are_the_plans_and_match_the_reference_table(db: Database) -> None:
    with db.service_transaction() as conn:
        rows = conn.execute("select tier, quota_key, quota_limit, reset_frequency from public.tier_quota_limits")
        table = {(r["tier"], r["quota_key"]): (r["quota_limit"], r["reset_frequency"]) for r in rows}
    constants = {
        (name, key): (limit.limit, limit.reset_frequency)
        for name, t in TIERS.items()
        for key, limit in t.quotas.items()
    }
    assert constants == table
    assert {name: (t.display_name, t.price) for name, t in TIERS.items()} == {
        "free": ("Free", 0),
        "pro": ("Pro", 999),
        "enterprise": ("Enterprise", None),
    }
    assert TIERS["free"].quotas["image_generation"].limit == 5
    assert TIERS["enterprise"].quotas["small_messages"].limit == 5000
    assert all(tuple(t.quotas) == QUOTA_KEYS for t in TIERS.values())


def test_reserve_admits_until_the_limit_then_raises_429_with_the_details(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    # GIVEN a free user (image_generation: 5 per 3 hours)
    with db.user_transaction(user.principal) as conn:
        reservations = [quota.reserve(conn, "image_generation") for _ in range(5)]
    row = stored(database_url, user.id, "image_generation")
    assert [r.used for r in reservations] == [1, 2, 3, 4, 5]
    assert {(r.quota_key, r.units, r.limit, r.tier, r.resets_at, r.window_started_at) for r in reservations} == {
        ("image_generation", 1, 5, "free", row["next_reset_at"], row["last_reset_at"])
    }
    # WHEN a sixth is asked for
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "image_generation")
    # THEN 429 QUOTA_EXCEEDED with exactly the documented details
    error = raised.value
    assert (error.status, error.code) == (429, "QUOTA_EXCEEDED")
    assert set(error.details) == {"quota_key", "used", "limit", "resets_at", "tier"}
    assert error.details == {
        "quota_key": "image_generation",
        "used": 5,
        "limit": 5,
        "resets_at": error.details["resets_at"],
        "tier": "free",
    }
    assert ISO_UTC.match(error.details["resets_at"]), error.details["resets_at"]
    assert datetime.fromisoformat(error.details["resets_at"]) == row["next_reset_at"]
    # AND the refusal wrote nothing
    assert stored(database_url, user.id, "image_generation") == row
    # AND the other quotas are untouched
    assert stored(database_url, user.id, "small_messages")["used_count"] == 0


def test_reserve_counts_several_units_at_once_and_never_partially(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with db.user_transaction(user.principal) as conn:
        first = quota.reserve(conn, "image_generation", units=3)
    assert (first.units, first.used) == (3, 3)
    # 3 more would be 6 > 5: refused whole, nothing counted
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "image_generation", units=3)
    assert (raised.value.details["used"], raised.value.details["limit"]) == (3, 5)
    with db.user_transaction(user.principal) as conn:
        assert quota.reserve(conn, "image_generation", units=2).used == 5
    assert stored(database_url, user.id, "image_generation")["used_count"] == 5
    # more units than the whole limit: refused on an unused quota too
    other = make_user()
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(other.principal) as conn:
        quota.reserve(conn, "image_generation", units=6)
    assert (raised.value.details["used"], raised.value.details["limit"]) == (0, 5)


def test_units_must_be_at_least_one_in_python_and_in_sql(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    for units in (0, -1):
        with pytest.raises(ValidationError), db.user_transaction(user.principal) as conn:
            quota.reserve(conn, "small_messages", units=units)
        with pytest.raises(psycopg.errors.InvalidParameterValue), db.user_transaction(user.principal) as conn:
            conn.execute("select * from oneai_private.reserve_quota('small_messages', %s)", (units,))
        with pytest.raises(psycopg.errors.InvalidParameterValue), db.user_transaction(user.principal) as conn:
            conn.execute("select oneai_private.refund_quota('small_messages', %s, now())", (units,))
    assert stored(database_url, user.id, "small_messages")["used_count"] == 0


def test_a_paid_tier_reports_its_own_limit_and_tier(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("update public.users set subscription_tier = 'pro' where id = %s", (user.id,))
        admin.execute("select public.assign_tier_quotas(%s, 'pro', true)", (user.id,))
    with db.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "image_generation", units=10)
    assert (reservation.tier, reservation.limit, reservation.used) == ("pro", 10, 10)
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "image_generation")
    assert (raised.value.details["tier"], raised.value.details["limit"]) == ("pro", 10)


def test_a_missing_quota_row_is_a_429_with_limit_zero(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "delete from public.usage_quotas where user_id = %s and quota_key = 'image_generation'", (user.id,)
        )
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "image_generation")
    assert raised.value.details == {
        "quota_key": "image_generation",
        "used": 0,
        "limit": 0,
        "resets_at": None,
        "tier": "free",
    }


def test_refund_gives_back_only_within_the_reservations_window(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with db.user_transaction(user.principal) as conn:
        unused = quota.reserve(conn, "small_messages", units=2)
        late = quota.reserve(conn, "small_messages")
        stale = quota.reserve(conn, "small_messages")
    assert stored(database_url, user.id, "small_messages")["used_count"] == 4
    # WHEN a reservation is refunded in its window THEN its units come back, once
    with db.user_transaction(user.principal) as conn:
        assert quota.refund(conn, unused) is True
        assert quota.refund(conn, unused) is False
    assert stored(database_url, user.id, "small_messages")["used_count"] == 2
    # GIVEN the window ended (no sweep, no reserve since): a refund gives nothing back
    window_is_over(database_url, user.id, "small_messages")
    with db.user_transaction(user.principal) as conn:
        assert quota.refund(conn, late) is False
    assert stored(database_url, user.id, "small_messages")["used_count"] == 2
    # GIVEN the next reserve applied the reset: a refund from the old window would eat the new one
    with db.user_transaction(user.principal) as conn:
        fresh = quota.reserve(conn, "small_messages")
    assert (fresh.used, fresh.window_started_at > stale.window_started_at) == (1, True)
    with db.user_transaction(user.principal) as conn:
        assert quota.refund(conn, stale) is False
    assert stored(database_url, user.id, "small_messages")["used_count"] == 1
    # AND the new window's own reservation refunds as usual
    with db.user_transaction(user.principal) as conn:
        assert quota.refund(conn, fresh) is True
    assert stored(database_url, user.id, "small_messages")["used_count"] == 0


def test_refund_never_goes_below_zero(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    with db.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "large_messages", units=3)
    # an operator lowered the usage in the same window
    set_row(database_url, user.id, "large_messages", used_count=1)
    with db.user_transaction(user.principal) as conn:
        assert quota.refund(conn, reservation) is True
    assert stored(database_url, user.id, "large_messages")["used_count"] == 0
    with db.user_transaction(user.principal) as conn:
        assert conn.execute(
            "select oneai_private.refund_quota('large_messages', 1, %s) as r", (reservation.window_started_at,)
        ).fetchone() == {"r": False}
    assert stored(database_url, user.id, "large_messages")["used_count"] == 0


def test_settle_keeps_what_was_used_and_gives_back_the_rest(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with db.user_transaction(user.principal) as conn:
        partly = quota.reserve(conn, "large_messages", units=3)
        fully = quota.reserve(conn, "large_messages", units=2)
        unused = quota.reserve(conn, "large_messages", units=4)
    assert stored(database_url, user.id, "large_messages")["used_count"] == 9
    with db.user_transaction(user.principal) as conn:
        quota.settle(conn, partly, units_used=1)
        quota.settle(conn, fully, units_used=2)
        quota.settle(conn, unused, units_used=0)
    assert stored(database_url, user.id, "large_messages")["used_count"] == 3
    # a settled reservation is closed: settling or refunding it again changes nothing
    with db.user_transaction(user.principal) as conn:
        quota.settle(conn, partly, units_used=0)
        assert quota.refund(conn, fully) is False
    assert stored(database_url, user.id, "large_messages")["used_count"] == 3
    another = quota.Reservation.model_validate(fully.model_dump())
    for wrong in (-1, 3):
        with pytest.raises(ValueError, match="units_used"), db.user_transaction(user.principal) as conn:
            quota.settle(conn, another, units_used=wrong)


def test_a_due_reset_is_applied_by_the_reserve_itself(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    # GIVEN an image quota used up in a window that ended a second ago, and no sweep
    ended = datetime.now(UTC) - timedelta(seconds=1)
    set_row(
        database_url,
        user.id,
        "image_generation",
        used_count=5,
        warning_level=100,
        last_reset_at=ended - timedelta(hours=3),
        next_reset_at=ended,
    )
    # WHEN more units than the whole limit are asked for THEN refused as of the new window, nothing written
    before = stored(database_url, user.id, "image_generation")
    with pytest.raises(QuotaExceededError) as raised, db.user_transaction(user.principal) as conn:
        now = transaction_now(conn)
        quota.reserve(conn, "image_generation", units=6)
    assert raised.value.details["used"] == 0
    assert datetime.fromisoformat(raised.value.details["resets_at"]) == now + timedelta(hours=3)
    assert stored(database_url, user.id, "image_generation") == before
    # WHEN the user reserves THEN the reserve starts a new window and admits
    with db.user_transaction(user.principal) as conn:
        now = transaction_now(conn)
        reservation = quota.reserve(conn, "image_generation")
    assert (reservation.used, reservation.window_started_at, reservation.resets_at) == (
        1,
        now,
        now + timedelta(hours=3),
    )
    after = stored(database_url, user.id, "image_generation")
    assert (after["used_count"], after["warning_level"], after["last_reset_at"], after["next_reset_at"]) == (
        1,
        0,
        now,
        now + timedelta(hours=3),
    )
    assert after["last_usage_at"] == now


def test_current_quotas_apply_a_due_reset_without_the_sweep(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    set_row(database_url, user.id, "image_generation", used_count=4, next_reset_at=datetime.now(UTC))
    set_row(database_url, user.id, "small_messages", used_count=7)
    small = stored(database_url, user.id, "small_messages")
    with db.user_transaction(user.principal) as conn:
        now = transaction_now(conn)
        statuses = {s.quota_key: s for s in quota.current_quotas(conn)}
    assert list(statuses) == sorted(QUOTA_KEYS)
    assert statuses["image_generation"].model_dump() == {
        "quota_key": "image_generation",
        "used": 0,
        "limit": 5,
        "remaining": 5,
        "resets_at": now + timedelta(hours=3),
        "percentage_used": 0.0,
        "reset_frequency": "3hour",
        "tier": "free",
    }
    assert statuses["small_messages"].model_dump() == {
        "quota_key": "small_messages",
        "used": 7,
        "limit": 100,
        "remaining": 93,
        "resets_at": small["next_reset_at"],
        "percentage_used": 7.0,
        "reset_frequency": "monthly",
        "tier": "free",
    }
    # computed, not written: the row still holds the old window until a reserve comes
    assert stored(database_url, user.id, "image_generation")["used_count"] == 4


def test_usage_over_a_lowered_limit_shows_no_remaining_and_refuses(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    # GIVEN a downgrade kept usage above the new limit
    set_row(database_url, user.id, "large_messages", used_count=30)
    with db.user_transaction(user.principal) as conn:
        status = next(s for s in quota.current_quotas(conn) if s.quota_key == "large_messages")
    assert (status.used, status.limit, status.remaining, status.percentage_used) == (30, 20, 0, 150.0)
    with pytest.raises(QuotaExceededError), db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "large_messages")


def next_utc_midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


EXPECTED_NEXT_RESET = {
    "daily": next_utc_midnight,
    "monthly": first_of_next_month,
    "3hour": lambda moment: moment + timedelta(hours=3),
}


@pytest.mark.parametrize("frequency", ["daily", "monthly", "3hour"])
def test_each_frequency_resets_through_next_quota_reset(
    db: Database, make_user: Any, database_url: str, frequency: str
) -> None:
    """The reserve and the status read take the next reset from public.next_quota_reset, the one place
    it is computed; its UTC boundaries (daily at 23:59:59 vs 00:00:00, the last day of a month, a 3-hour
    window across midnight) are covered by test_connection's test_next_quota_reset_boundaries_in_utc."""
    user = make_user()
    set_row(
        database_url,
        user.id,
        "small_messages",
        reset_frequency=frequency,
        used_count=100,
        next_reset_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    with db.user_transaction(user.principal) as conn:
        now = transaction_now(conn)
        # the session time zone must not move the boundaries
        conn.execute("set local timezone = 'Asia/Kolkata'")
        shown = next(s for s in quota.current_quotas(conn) if s.quota_key == "small_messages")
        reservation = quota.reserve(conn, "small_messages")
        by_function = conn.execute(
            "select public.next_quota_reset(%s, %s) as at", (frequency, reservation.window_started_at)
        ).fetchone()
    assert by_function is not None
    assert reservation.window_started_at == now
    assert reservation.resets_at == shown.resets_at == by_function["at"] == EXPECTED_NEXT_RESET[frequency](now)
    assert (reservation.used, shown.used, shown.reset_frequency) == (1, 0, frequency)


def test_the_functions_touch_only_the_callers_rows(db: Database, make_user: Any, database_url: str) -> None:
    alice, bob = make_user(), make_user()
    with db.user_transaction(alice.principal) as conn:
        reservation = quota.reserve(conn, "small_messages", units=3)
    # GIVEN Bob's row even has the same window start as Alice's reservation
    set_row(database_url, bob.id, "small_messages", used_count=2, last_reset_at=reservation.window_started_at)
    # WHEN Bob refunds with Alice's window (there is no parameter to name another user)
    with db.user_transaction(bob.principal) as conn:
        refunded = conn.execute(
            "select oneai_private.refund_quota('small_messages', 3, %s) as r", (reservation.window_started_at,)
        ).fetchone()
        bob_reserved = quota.reserve(conn, "small_messages")
        bob_sees = [(s.quota_key, s.used) for s in quota.current_quotas(conn)]
        # the admin's reader takes a user id, but runs as its caller: RLS shows Bob only his own rows
        alice_to_bob = conn.execute("select * from oneai_private.quotas_of(%s)", (alice.id,)).fetchall()
    assert alice_to_bob == []
    # THEN only Bob's own row moved
    assert refunded == {"r": True}
    assert bob_reserved.used == 1
    assert bob_sees == [("image_generation", 0), ("large_messages", 0), ("small_messages", 1)]
    assert stored(database_url, alice.id, "small_messages")["used_count"] == 3
    assert stored(database_url, bob.id, "small_messages")["used_count"] == 1
    with db.service_transaction() as conn:
        signatures = conn.execute(
            "select p.proname, pg_get_function_identity_arguments(p.oid) as args"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = 'oneai_private' and p.proname like '%%quota%%' order by 1"
        ).fetchall()
    assert [(s["proname"], s["args"]) for s in signatures] == [
        ("claim_quota_warnings", "p_quota_key text"),
        ("current_quotas", ""),
        # quota overrides (20261122040000_admin.sql): the end of overrides on a tier change (a trigger
        # function), the override in force, one user's quotas (invoker: RLS applies)
        ("end_quota_overrides_on_tier_change", ""),
        ("quota_override_in_force", "p_user_id uuid, p_quota_key text, p_at timestamp with time zone"),
        ("quotas_of", "p_user_id uuid"),
        ("refund_quota", "p_quota_key text, p_units integer, p_window_started_at timestamp with time zone"),
        ("reserve_quota", "p_quota_key text, p_units integer"),
    ]


def test_without_a_user_the_functions_refuse(db: Database, make_user: Any) -> None:
    make_user()
    calls = [
        "select * from oneai_private.reserve_quota('small_messages', 1)",
        "select oneai_private.refund_quota('small_messages', 1, now())",
        "select * from oneai_private.current_quotas()",
    ]
    for call in calls:
        # the service role may execute them, but they need a caller: there is nobody's quota to use
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="authenticated caller"),
            db.service_transaction() as conn,
        ):
            conn.execute(call)
        # anon may not execute them at all
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
            conn.execute(call)


def test_privileges_and_settings_of_the_functions(db: Database) -> None:
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select f::regprocedure::text as fn,"
            " has_function_privilege('anon', f::regprocedure, 'execute') as anon,"
            " has_function_privilege('authenticated', f::regprocedure, 'execute') as authenticated,"
            " has_function_privilege('service_role', f::regprocedure, 'execute') as service_role,"
            " p.prosecdef as definer, p.proconfig as config"
            " from unnest(%s::text[]) as f join pg_proc p on p.oid = f::regprocedure",
            (list(FUNCTIONS),),
        ).fetchall()
        schema = conn.execute(
            "select has_schema_privilege('anon', 'oneai_private', 'usage') as anon,"
            " has_schema_privilege('authenticated', 'oneai_private', 'usage') as authenticated"
        ).fetchone()
    assert {r["fn"]: (r["anon"], r["authenticated"], r["service_role"]) for r in rows} == {
        "oneai_private.reserve_quota(text,integer)": (False, True, True),
        "oneai_private.refund_quota(text,integer,timestamp with time zone)": (False, True, True),
        "oneai_private.current_quotas()": (False, True, True),
    }
    # the writers run as the owner with an empty search_path; the reader runs as the caller, under RLS
    assert {r["fn"].split("(")[0]: (r["definer"], r["config"]) for r in rows} == {
        "oneai_private.reserve_quota": (True, ['search_path=""']),
        "oneai_private.refund_quota": (True, ['search_path=""']),
        "oneai_private.current_quotas": (False, ['search_path=""']),
    }
    assert schema == {"anon": False, "authenticated": True}


def test_a_user_still_cannot_write_usage_quotas_directly(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    before = stored(database_url, user.id, "small_messages")
    attempts = [
        "update public.usage_quotas set used_count = 0",
        "update public.usage_quotas set used_count = used_count + 1 where quota_key = 'small_messages'",
        "update public.usage_quotas set next_reset_at = now() - interval '1 day'",
        "delete from public.usage_quotas",
        "insert into public.usage_quotas (user_id, subscription_tier, quota_key, quota_limit, reset_frequency,"
        " last_reset_at, next_reset_at) values (auth.uid(), 'free', 'small_messages', 9999, 'daily', now(), now())",
    ]
    for statement in attempts:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(user.principal) as conn:
            conn.execute(statement)
    assert stored(database_url, user.id, "small_messages") == before
