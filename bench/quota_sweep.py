"""The quota-reset sweep over 1,000,000 due rows, against one UPDATE of all of them, in the same run.

Data: two identical populations of 333,334 users x 3 quota rows (1,000,002 rows each; 33,334 users in
`--quick`), one `monthly` and one `daily`, every row used and due (windows that ended within the last
hour, spread over it), written with `INSERT ... SELECT generate_series` as admin with
`session_replication_role = replica` (no provisioning trigger, which would add each user's free quotas
one by one), then VACUUM ANALYZE as autovacuum would.

Measured:
- sweep: `oneai.quota.sweep.sweep_due_quotas(db, "monthly")` as the function runs it (service
  transactions, batches of `DEFAULT_BATCH_SIZE` locked with FOR UPDATE SKIP LOCKED, each committed);
  the time of each batch is read from the sweep's own questions about the time left;
- baseline: one `UPDATE` of every due `daily` row (the same SET, no batching, no locking clause) in one
  transaction, on a vacuumed table, without the per-transaction statement timeout: the cost of the
  work itself, i.e. what the batching adds on top of it.
Goal: the sweep of 1,000,000 due rows in <= 60 s.
"""

from __future__ import annotations

import time
from typing import Final

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import table
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.quota.sweep import DEFAULT_BATCH_SIZE, sweep_due_quotas
from oneai.quota.tiers import ResetFrequency

USERS: Final = 333_334
QUICK_USERS: Final = 33_334
KEYS: Final = ("small_messages", "large_messages", "image_generation")
GOAL_SECONDS: Final = 60.0
GOAL_ROWS: Final = 1_000_000

# Both populations, one statement per table; a trigger-free insert is an admin's bulk load.
LOAD = (
    "set local session_replication_role = replica",
    """create temporary table bench_users on commit drop as
  select gen_random_uuid() as id, i, case when i <= %(users)s then 'monthly' else 'daily' end as frequency
  from generate_series(1, 2 * %(users)s) as i""",
    "insert into auth.users (id, email) select id, 'sweep-' || id || '@bench.test' from bench_users",
    "insert into public.users (id, email) select id, 'sweep-' || id || '@bench.test' from bench_users",
    # due within the last hour, spread over it
    """insert into public.usage_quotas
  (user_id, subscription_tier, quota_key, used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at)
select u.id, 'free', k.key, 3, 100, u.frequency, now() - interval '40 days',
       now() - interval '1 hour' + (u.i %% 3500) * interval '1 second'
from bench_users u cross join unnest(%(keys)s::text[]) as k(key)""",
)
VACUUM = "vacuum analyze public.usage_quotas, public.users, auth.users"
DUE = "select count(*) from public.usage_quotas where reset_frequency = %s and next_reset_at <= now()"
SINGLE_UPDATE = """
update public.usage_quotas as q set
  used_count = 0,
  warning_level = 0,
  last_reset_at = now(),
  next_reset_at = public.next_quota_reset(q.reset_frequency, now())
where q.reset_frequency = 'daily' and q.next_reset_at <= now()"""


class BatchClock:
    """A `time_left` that never runs out and notes when it is asked: the sweep asks once before each
    batch, so the gaps between questions are the batches' durations."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self) -> float:
        self.asked.append(time.perf_counter())
        return 3600.0

    def batch_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.asked, self.asked[1:], strict=False)]


def due(url: str, frequency: ResetFrequency) -> int:
    with psycopg.connect(url) as admin:
        row = admin.execute(DUE, (frequency,)).fetchone()
    return int(row[0]) if row else 0


def run(*, quick: bool = False) -> None:
    users = QUICK_USERS if quick else USERS
    rows = users * len(KEYS)
    print(
        f"== quota_sweep: the reset sweep over {rows:,} due rows (batches of {DEFAULT_BATCH_SIZE:,},"
        " FOR UPDATE SKIP LOCKED) vs one UPDATE of an identical copy =="
    )
    started = time.perf_counter()
    with throwaway_database() as url:
        with psycopg.connect(url, autocommit=True) as admin:
            version_row = admin.execute("show server_version").fetchone()
            version = version_row[0] if version_row else "?"
            load_started = time.perf_counter()
            with admin.transaction():
                for statement in LOAD:
                    admin.execute(statement, {"users": users, "keys": list(KEYS)})
            admin.execute(VACUUM)
            load_seconds = time.perf_counter() - load_started
        if (due(url, "monthly"), due(url, "daily")) != (rows, rows):
            raise RuntimeError("the bench data is not what it should be")

        with override_settings(database_url=SecretStr(url)) as settings:
            database = Database(settings)
            try:
                clock = BatchClock()
                report = sweep_due_quotas(database, "monthly", time_left=clock)
            finally:
                database.close()
        batches = clock.batch_seconds()

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(VACUUM)  # the sweep's dead rows gone, as autovacuum would, before the baseline
            single_started = time.perf_counter()
            with admin.transaction():
                single_rows = admin.execute(SINGLE_UPDATE).rowcount
            single_seconds = time.perf_counter() - single_started
        left = (due(url, "monthly"), due(url, "daily"))
    total = time.perf_counter() - started

    if report.reset != rows or single_rows != rows or left != (0, 0) or report.remaining != 0:
        raise RuntimeError(f"rows left behind: sweep {report}, single {single_rows}, due after {left}")
    print(
        f"PostgreSQL {version}; {rows:,} due rows per population, two populations loaded in"
        f" {load_seconds:.1f} s; whole run {total:.1f} s (database made, migrated and dropped)"
    )
    slowest = max(batches) if batches else 0.0
    print(
        table(
            ("variant", "rows", "seconds", "rows/s", "batches", "longest batch"),
            [
                [
                    f"sweep (batches of {DEFAULT_BATCH_SIZE:,})",
                    f"{report.reset:,}",
                    f"{report.seconds:.2f}",
                    f"{report.reset / report.seconds:,.0f}",
                    f"{report.batches:,}",
                    f"{slowest * 1000:,.0f} ms",
                ],
                [
                    "baseline: one UPDATE",
                    f"{single_rows:,}",
                    f"{single_seconds:.2f}",
                    f"{single_rows / single_seconds:,.0f}",
                    "1",
                    f"{single_seconds * 1000:,.0f} ms",
                ],
            ],
            align="lrrrrr",
        )
    )
    print(
        f"batching costs {report.seconds / single_seconds:.2f}x the single UPDATE's time and never holds more"
        f" than {DEFAULT_BATCH_SIZE:,} row locks, nor a transaction longer than {slowest * 1000:,.0f} ms"
    )
    projected = report.seconds * GOAL_ROWS / report.reset
    if quick:
        print(
            f"goal: {GOAL_ROWS:,} rows in <= {GOAL_SECONDS:.0f} s: projected {projected:.1f} s from this quick run"
            " (judged on the full run only)"
        )
    else:
        verdict = "PASS" if report.seconds <= GOAL_SECONDS else "MISS"
        print(f"goal: {GOAL_ROWS:,} rows in <= {GOAL_SECONDS:.0f} s: {report.seconds:.1f} s  {verdict}")


if __name__ == "__main__":
    run()
