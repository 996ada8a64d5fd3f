"""The quota-reset sweep and the end of grace periods, against the real schema.

The sweep resets exactly the due rows of its frequency, once, whoever else runs (a second sweep, a
concurrent one, a reserve that resets the row itself), stops before its time runs out and reports what is
left. Grace periods that have run out halt their subscription and bring the user back to free, once.

The test database is shared by the whole run, so each test that counts starts from "nothing due": it
sweeps every frequency first (tests run one at a time).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from oneai.billing.grace import end_expired_grace_periods
from oneai.db.connection import Database
from oneai.quota import service as quota
from oneai.quota.sweep import SweepReport, TimeBudget, sweep_due_quotas
from oneai.quota.tiers import RESET_FREQUENCIES, TIERS, ResetFrequency
from tests.conftest import AppUser

QUOTA_ROWS = (
    "select user_id, quota_key, used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at,"
    " warning_level, subscription_tier from public.usage_quotas where user_id = any(%s)"
)


# ---------------------------------------------------------------- helpers


def admin_rows(database_url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as admin:
        return admin.execute(query, params).fetchall()


def admin_execute(database_url: str, query: str, params: Any = None) -> int:
    with psycopg.connect(database_url, autocommit=True) as admin:
        return admin.execute(query, params).rowcount


def quota_rows(database_url: str, user_ids: list[UUID]) -> dict[tuple[UUID, str], dict[str, Any]]:
    rows = admin_rows(database_url, QUOTA_ROWS, (user_ids,))
    return {(r["user_id"], r["quota_key"]): r for r in rows}


def make_due(
    database_url: str,
    user_ids: list[UUID],
    frequency: ResetFrequency,
    *,
    used: int = 3,
    ago: timedelta = timedelta(minutes=5),
    quota_key: str | None = None,
) -> int:
    """Time passed: these users' quota rows (or one key of them) are of `frequency`, used, warned, and
    their window ended `ago`; no sweep has run. Returns how many rows that is."""
    return admin_execute(
        database_url,
        "update public.usage_quotas set reset_frequency = %(frequency)s, used_count = %(used)s,"
        " warning_level = 80, last_reset_at = now() - interval '40 days', next_reset_at = now() - %(ago)s"
        " where user_id = any(%(ids)s) and (%(key)s::text is null or quota_key = %(key)s)",
        {"frequency": frequency, "used": used, "ago": ago, "ids": user_ids, "key": quota_key},
    )


def bulk_users(database_url: str, count: int) -> list[UUID]:
    """`count` users as Supabase makes them (auth.users rows; the trigger adds users + free quotas)."""
    ids = [uuid.uuid4() for _ in range(count)]
    admin_execute(
        database_url,
        "insert into auth.users (id, email) select id, 'sweep-' || id || '@example.test' from unnest(%s::uuid[]) id",
        (ids,),
    )
    return ids


def sweep_everything(db: Database) -> None:
    """Nothing due anywhere: the starting point of a test that counts."""
    for frequency in RESET_FREQUENCIES:
        report = sweep_due_quotas(db, frequency)
        assert report.remaining == 0


class StopsAfter:
    """A fake `time_left`: plenty of time for the first `calls` questions, then none."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.asked = 0

    def __call__(self) -> float:
        self.asked += 1
        return 600.0 if self.asked <= self.calls else 0.0


@pytest.fixture
def clean(db: Database) -> Database:
    sweep_everything(db)
    return db


@pytest.fixture
def databases(settings_with_db: Any) -> Iterator[Callable[[], Database]]:
    made: list[Database] = []

    def make() -> Database:
        made.append(Database(settings_with_db))
        return made[-1]

    yield make
    for database in made:
        database.close()


def in_threads(*work: Callable[[], Any]) -> list[Any]:
    """Run each callable in its own thread, released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(index: int, job: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = job()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def next_reset(database_url: str, frequency: str, moment: datetime) -> datetime:
    rows = admin_rows(database_url, "select public.next_quota_reset(%s, %s) as at", (frequency, moment))
    at: datetime = rows[0]["at"]
    return at


# ---------------------------------------------------------------- the sweep


def test_the_sweep_resets_exactly_the_due_rows_of_its_frequency(
    clean: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    # GIVEN daily rows that are due, a daily row that is not due yet, and due rows of other frequencies
    due_user, later_user, monthly_user, three_hour_user = (make_user() for _ in range(4))
    assert make_due(database_url, [due_user.id], "daily") == 3
    make_due(database_url, [later_user.id], "daily", ago=timedelta(minutes=-5))  # due in 5 minutes
    make_due(database_url, [monthly_user.id], "monthly")
    make_due(database_url, [three_hour_user.id], "3hour")
    users = [due_user.id, later_user.id, monthly_user.id, three_hour_user.id]
    before = quota_rows(database_url, users)

    # WHEN the daily sweep runs
    report = sweep_due_quotas(clean, "daily")

    # THEN it reset the three due daily rows, in one batch, and nothing is left
    assert report == SweepReport(
        frequency="daily", reset=3, remaining=0, batches=1, stopped_early=False, seconds=report.seconds
    )
    after = quota_rows(database_url, users)
    for key in ("small_messages", "large_messages", "image_generation"):
        row = after[(due_user.id, key)]
        # used 0, warning level 0, a window starting at the sweep, the next reset from next_quota_reset
        assert (row["used_count"], row["warning_level"]) == (0, 0)
        assert row["last_reset_at"] > before[(due_user.id, key)]["next_reset_at"]
        assert row["next_reset_at"] == next_reset(database_url, "daily", row["last_reset_at"])
        assert row["next_reset_at"] > datetime.now(UTC)
        # limits, tier and frequency are not the sweep's business
        assert (row["quota_limit"], row["subscription_tier"], row["reset_frequency"]) == (
            before[(due_user.id, key)]["quota_limit"],
            "free",
            "daily",
        )
    # AND the rows not yet due, and the due rows of other frequencies, are untouched
    for user_id in (later_user.id, monthly_user.id, three_hour_user.id):
        for key in ("small_messages", "large_messages", "image_generation"):
            assert after[(user_id, key)] == before[(user_id, key)]
    # AND the other frequencies' sweeps take theirs, each on its own rule
    monthly = sweep_due_quotas(clean, "monthly")
    three_hour = sweep_due_quotas(clean, "3hour")
    assert (monthly.reset, three_hour.reset) == (3, 3)
    after = quota_rows(database_url, users)
    row = after[(three_hour_user.id, "image_generation")]
    assert row["next_reset_at"] == row["last_reset_at"] + timedelta(hours=3)
    row = after[(monthly_user.id, "small_messages")]
    assert row["next_reset_at"] == next_reset(database_url, "monthly", row["last_reset_at"])
    assert (row["next_reset_at"].astimezone(UTC).day, row["next_reset_at"].astimezone(UTC).hour) == (1, 0)


def test_a_second_sweep_resets_nothing(
    clean: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    users = [make_user().id for _ in range(5)]
    make_due(database_url, users, "monthly")
    first = sweep_due_quotas(clean, "monthly", batch_size=4)
    after_first = quota_rows(database_url, users)
    # batches of 4 over 15 rows: 4 + 4 + 4 + 3
    assert (first.reset, first.batches, first.remaining, first.stopped_early) == (15, 4, 0, False)

    second = sweep_due_quotas(clean, "monthly", batch_size=4)

    assert (second.reset, second.batches, second.remaining) == (0, 1, 0)
    assert quota_rows(database_url, users) == after_first


def test_concurrent_sweeps_reset_each_due_row_once(
    clean: Database, databases: Callable[[], Database], database_url: str
) -> None:
    # GIVEN 3,000 due rows (1,000 users x 3 quotas)
    users = bulk_users(database_url, 1000)
    assert make_due(database_url, users, "daily") == 3000
    first, second = databases(), databases()
    for database in (first, second):  # connected before the race starts
        with database.service_transaction():
            pass

    # WHEN two sweeps (two containers, own connections) run at the same time, in small batches
    reports: list[SweepReport] = in_threads(
        lambda: sweep_due_quotas(first, "daily", batch_size=100),
        lambda: sweep_due_quotas(second, "daily", batch_size=100),
    )

    # THEN together they reset 3,000 rows: every due row, and none twice (a second reset of a row would
    # count again, so the total would be above 3,000)
    assert sum(r.reset for r in reports) == 3000, reports
    assert not any(r.stopped_early for r in reports)
    # (the first to finish may count rows the other still had locked as remaining; the last one none)
    assert min(r.remaining for r in reports) == 0
    again = sweep_due_quotas(clean, "daily")
    assert (again.reset, again.remaining) == (0, 0)
    rows = quota_rows(database_url, users).values()
    assert len(rows) == 3000
    assert all(r["used_count"] == 0 and r["next_reset_at"] > datetime.now(UTC) for r in rows)
    # both took part: SKIP LOCKED split the rows instead of making one wait for the other
    assert all(r.reset > 0 for r in reports), reports


def test_a_row_a_reserve_has_reset_is_not_reset_again_by_the_sweep(
    clean: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    make_due(database_url, [user.id], "3hour", quota_key="image_generation")
    # GIVEN the user reserved after the window ended: the reserve applied the reset itself (3 -> 0 + 1)
    with clean.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "image_generation")
    assert reservation.used == 1

    # WHEN the sweep runs afterwards THEN it leaves the row alone: the use of the new window is kept
    report = sweep_due_quotas(clean, "3hour")
    assert (report.reset, report.remaining) == (0, 0)
    row = quota_rows(database_url, [user.id])[(user.id, "image_generation")]
    assert (row["used_count"], row["last_reset_at"]) == (1, reservation.window_started_at)


def test_a_sweep_skips_a_row_a_reserve_holds_and_the_reserve_counts_once(
    clean: Database, databases: Callable[[], Database], make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    make_due(database_url, [user.id], "3hour", quota_key="image_generation")
    sweeper = databases()
    # GIVEN a reserve that has reset and counted the row but not committed yet (it holds the row lock)
    with clean.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "image_generation")
        # WHEN the sweep runs meanwhile THEN it does not wait for the row, and does not touch it
        during = sweep_due_quotas(sweeper, "3hour")
        assert during.reset == 0
        assert during.remaining == 1  # still due as far as committed data goes
    # AND once the reserve commits the row is in its new window with the one use, and no sweep resets it
    after = sweep_due_quotas(sweeper, "3hour")
    assert (after.reset, after.remaining) == (0, 0)
    row = quota_rows(database_url, [user.id])[(user.id, "image_generation")]
    assert (row["used_count"], row["last_reset_at"]) == (1, reservation.window_started_at)


def test_a_reserve_waiting_on_a_sweep_batch_counts_in_the_new_window(
    clean: Database, databases: Callable[[], Database], make_user: Callable[..., AppUser], database_url: str
) -> None:
    from oneai.db import quota_sweep as repo

    user = make_user()
    make_due(database_url, [user.id], "3hour", quota_key="image_generation", used=5)  # used up
    reserver = databases()
    # GIVEN a sweep batch that has reset the row but not committed yet
    with clean.service_transaction() as conn:
        assert repo.reset_due_quotas(conn, "3hour", 10) == 1

        # WHEN the user reserves meanwhile (it waits for the batch's row lock)
        def reserve() -> quota.Reservation:
            with reserver.user_transaction(user.principal) as user_conn:
                return quota.reserve(user_conn, "image_generation")

        waiting: list[Any] = []
        thread = threading.Thread(target=lambda: waiting.append(reserve()))
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "the reserve should wait for the sweep's row lock"
        sweep_started = conn.execute("select now() as now").fetchone()
    thread.join(timeout=10)

    # THEN the reserve counts one use in the window the sweep started (not reset twice, not lost)
    assert sweep_started is not None
    assert len(waiting) == 1 and waiting[0].used == 1
    assert waiting[0].window_started_at == sweep_started["now"]
    row = quota_rows(database_url, [user.id])[(user.id, "image_generation")]
    assert (row["used_count"], row["last_reset_at"]) == (1, sweep_started["now"])


def test_the_sweep_stops_before_its_time_runs_out_and_a_second_run_finishes(
    clean: Database, database_url: str
) -> None:
    users = bulk_users(database_url, 100)
    assert make_due(database_url, users, "monthly") == 300
    # GIVEN time for one batch only (the second question about time left gets "none")
    time_left = StopsAfter(calls=1)

    # WHEN the sweep runs THEN it stops after one batch, says so, and counts what is left
    first = sweep_due_quotas(clean, "monthly", batch_size=100, time_left=time_left, safety_margin=5.0)
    assert (first.reset, first.batches, first.stopped_early, first.remaining) == (100, 1, True, 200)
    assert time_left.asked == 2

    # AND the next run finishes the rest
    second = sweep_due_quotas(clean, "monthly", batch_size=100, time_left=lambda: 600.0)
    assert (second.reset, second.stopped_early, second.remaining) == (200, False, 0)


def test_with_no_time_left_the_sweep_does_not_start_a_batch(clean: Database, database_url: str) -> None:
    users = bulk_users(database_url, 2)
    make_due(database_url, users, "daily")
    report = sweep_due_quotas(clean, "daily", time_left=lambda: 9.9, safety_margin=10.0)
    assert (report.reset, report.batches, report.stopped_early, report.remaining) == (0, 0, True, 6)
    sweep_due_quotas(clean, "daily")


def test_the_time_budget_keeps_two_of_the_longest_batches_and_the_margin() -> None:
    left = [100.0]
    budget = TimeBudget(lambda: left[0], safety_margin=10.0)
    assert budget.allows_another_batch()  # nothing measured yet: the margin alone
    budget.record_batch(30.0)
    budget.record_batch(5.0)  # the longest batch counts
    assert budget.allows_another_batch()  # 100 >= 10 + 2 x 30
    left[0] = 69.9
    assert not budget.allows_another_batch()
    assert TimeBudget(None, safety_margin=10.0).allows_another_batch()  # no budget: never stops


@pytest.mark.parametrize(("frequency", "batch_size"), [("weekly", 10), ("daily", 0), ("daily", True)])
def test_a_bad_frequency_or_batch_size_is_refused(db: Database, frequency: Any, batch_size: Any) -> None:
    with pytest.raises(ValueError):
        sweep_due_quotas(db, frequency, batch_size=batch_size)


def test_the_sweep_uses_the_due_index(db: Database) -> None:
    from oneai.db.quota_sweep import COUNT_DUE_QUOTAS, RESET_DUE_QUOTAS

    with db.service_transaction() as conn:
        conn.execute("set local enable_seqscan = off")  # a test table is small: ask what it *can* use
        plans = [
            "\n".join(
                row["QUERY PLAN"]
                for row in conn.execute(f"explain {query}", {"frequency": "daily", "limit": 5000}).fetchall()
            )
            for query in (RESET_DUE_QUOTAS, COUNT_DUE_QUOTAS)
        ]
    for plan in plans:
        assert "idx_usage_quotas_due" in plan, plan
    assert "LockRows" in plans[0] and "Limit" in plans[0]


def test_a_read_after_the_reset_time_shows_no_use_without_the_sweep(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    make_due(database_url, [user.id], "monthly", quota_key="small_messages", used=42)
    with db.user_transaction(user.principal) as conn:
        statuses = {s.quota_key: s for s in quota.current_quotas(conn)}
    assert statuses["small_messages"].used == 0
    assert quota_rows(database_url, [user.id])[(user.id, "small_messages")]["used_count"] == 42  # not swept


# ---------------------------------------------------------------- grace periods


def pro_in_grace(database_url: str, user: AppUser, *, grace_until: timedelta, used: int = 150) -> UUID:
    """A pro user whose renewal failed: subscription pending until now + `grace_until` (negative: over),
    the user still pro with pending status, `used` small messages used this month."""
    subscription_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "update public.users set subscription_tier = 'pro', subscription_status = 'pending' where id = %s",
            (user.id,),
        )
        admin.execute("select public.assign_tier_quotas(%s, 'pro', true)", (user.id,))
        admin.execute(
            "update public.usage_quotas set used_count = %s where user_id = %s and quota_key = 'small_messages'",
            (used, user.id),
        )
        admin.execute(
            "insert into public.subscriptions (id, user_id, plan_id, tier, status, provider_subscription_id,"
            " paid_until, grace_until) values (%s, %s, 'plan_pro_monthly', 'pro', 'pending', %s,"
            " now() - interval '3 days', now() + %s)",
            (subscription_id, user.id, f"sub_{subscription_id.hex[:14]}", grace_until),
        )
    return subscription_id


def subscription(database_url: str, subscription_id: UUID) -> dict[str, Any]:
    rows = admin_rows(
        database_url, "select status, grace_until from public.subscriptions where id = %s", (subscription_id,)
    )
    return rows[0]


def user_state(database_url: str, user_id: UUID) -> dict[str, Any]:
    return admin_rows(
        database_url,
        "select subscription_tier, subscription_status from public.users where id = %s",
        (user_id,),
    )[0]


def history(database_url: str, user_id: UUID) -> list[dict[str, Any]]:
    return admin_rows(
        database_url,
        "select subscription_id, old_tier, new_tier, change_reason, metadata from public.subscription_history"
        " where user_id = %s order by changed_at",
        (user_id,),
    )


@pytest.fixture
def no_expired_grace(db: Database) -> Database:
    end_expired_grace_periods(db)
    return db


def test_an_expired_grace_period_halts_the_subscription_and_downgrades_to_free_keeping_usage(
    no_expired_grace: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    db = no_expired_grace
    # GIVEN a pro user whose grace period ended a minute ago, and one whose grace lasts another day
    expired_user, waiting_user = make_user(), make_user()
    expired = pro_in_grace(database_url, expired_user, grace_until=timedelta(minutes=-1))
    waiting = pro_in_grace(database_url, waiting_user, grace_until=timedelta(days=1))
    waiting_before = (subscription(database_url, waiting), quota_rows(database_url, [waiting_user.id]))
    window_before = quota_rows(database_url, [expired_user.id])[(expired_user.id, "small_messages")]

    # WHEN grace periods are ended
    ended = end_expired_grace_periods(db, batch_size=10, time_left=lambda: 600.0)

    # THEN exactly the expired one ended: the subscription is halted, its grace cleared
    assert ended == 1
    assert subscription(database_url, expired) == {"status": "halted", "grace_until": None}
    # AND the user is free (status halted), with one payment_failure history row for that subscription
    assert user_state(database_url, expired_user.id) == {
        "subscription_tier": "free",
        "subscription_status": "halted",
    }
    [change] = history(database_url, expired_user.id)
    assert (change["subscription_id"], change["old_tier"], change["new_tier"], change["change_reason"]) == (
        expired,
        "pro",
        "free",
        "payment_failure",
    )
    # AND the quota rows have the free limits, with this month's usage kept (150 of now 100: used up)
    rows = quota_rows(database_url, [expired_user.id])
    assert {key: row["quota_limit"] for (_, key), row in rows.items()} == {
        key: limit.limit for key, limit in TIERS["free"].quotas.items()
    }
    small = rows[(expired_user.id, "small_messages")]
    assert (small["used_count"], small["subscription_tier"]) == (150, "free")
    assert (small["last_reset_at"], small["next_reset_at"]) == (
        window_before["last_reset_at"],
        window_before["next_reset_at"],
    )
    # AND the grace period that has not run out is untouched
    assert (subscription(database_url, waiting), quota_rows(database_url, [waiting_user.id])) == waiting_before
    assert user_state(database_url, waiting_user.id) == {
        "subscription_tier": "pro",
        "subscription_status": "pending",
    }
    assert history(database_url, waiting_user.id) == []


def test_ending_grace_periods_twice_or_concurrently_ends_each_once(
    no_expired_grace: Database,
    databases: Callable[[], Database],
    make_user: Callable[..., AppUser],
    database_url: str,
) -> None:
    users = [make_user() for _ in range(6)]
    for user in users:
        pro_in_grace(database_url, user, grace_until=timedelta(minutes=-1))

    # WHEN two sweeps end grace periods at the same time, in batches of 2, and then a third runs
    first, second = databases(), databases()
    counts = in_threads(
        lambda: end_expired_grace_periods(first, batch_size=2),
        lambda: end_expired_grace_periods(second, batch_size=2),
    )
    again = end_expired_grace_periods(no_expired_grace)

    # THEN each grace period ended once: six in all, one history row per user, nothing the second time
    assert sum(counts) == 6 and again == 0
    for user in users:
        assert [h["change_reason"] for h in history(database_url, user.id)] == ["payment_failure"]
        assert user_state(database_url, user.id)["subscription_tier"] == "free"


def test_a_user_with_another_active_subscription_keeps_the_tier(
    no_expired_grace: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    expired = pro_in_grace(database_url, user, grace_until=timedelta(minutes=-1))
    admin_execute(
        database_url,
        "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id)"
        " values (%s, 'plan_pro_monthly', 'pro', 'active', %s)",
        (user.id, f"sub_new_{user.id.hex[:10]}"),
    )

    assert end_expired_grace_periods(no_expired_grace) == 1

    assert subscription(database_url, expired)["status"] == "halted"
    assert user_state(database_url, user.id)["subscription_tier"] == "pro"
    assert history(database_url, user.id) == []


def test_a_grace_period_whose_user_is_busy_is_left_for_the_next_run(
    no_expired_grace: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    expired = pro_in_grace(database_url, user, grace_until=timedelta(minutes=-1))
    # GIVEN another transaction holds the user's row (a profile update, a webhook)
    with psycopg.connect(database_url) as other:
        other.execute("select 1 from public.users where id = %s for update", (user.id,))
        # WHEN grace periods are ended meanwhile THEN the sweep does not wait for it, and leaves it
        assert end_expired_grace_periods(no_expired_grace) == 0
        assert subscription(database_url, expired)["status"] == "pending"
    # AND the next run ends it
    assert end_expired_grace_periods(no_expired_grace) == 1
    assert user_state(database_url, user.id)["subscription_tier"] == "free"
