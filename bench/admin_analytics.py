"""Admin analytics over 1,000,000 usage records, against the same figures computed from the raw usage
records (the naive queries, without the rollups), in the same run; and what the rollup triggers cost a
usage insert.

Data (in a throwaway database): 20,000 users (a third each free, pro, enterprise), 1,000,000 usage
records spread over the 90 days before today across 8 models, 4,000 active subscriptions with 12,000
charges. The records are bulk-loaded without triggers (`session_replication_role = replica`), then the
rollups are built with the migration's own backfill statements, which is what the triggers would have
written one record at a time; then VACUUM ANALYZE as autovacuum would.

Measured (median of the runs, each a fresh service transaction):
- analytics: `oneai.admin.analytics.analytics` over the whole 90 days, as `GET /admin/analytics` runs it;
- baseline: the usage figures (per day, per model, per tier, active users) from `usage_records` itself,
  one query each, on the existing index (user_id, created_at) and a sequential scan;
- write cost: 2,000 single-row usage inserts, each its own transaction, with the rollup triggers and
  with them disabled.
Goal: analytics over 1,000,000 usage records in < 1 s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from oneai.admin.analytics import analytics
from oneai.admin.models import AnalyticsQuery
from oneai.auth import Principal
from oneai.config import override_settings
from oneai.db.connection import Database

USERS: Final = 20_000
RECORDS: Final = 1_000_000
QUICK_RECORDS: Final = 100_000
DAYS: Final = 90
RUNS: Final = 7
QUICK_RUNS: Final = 3
INSERTS: Final = 2_000
QUICK_INSERTS: Final = 300
WARMUP_INSERTS: Final = 200
GOAL_SECONDS: Final = 1.0

LOAD = (
    "set local session_replication_role = replica",
    """create temporary table bench_users on commit drop as
  select gen_random_uuid() as id, i, (array['free', 'pro', 'enterprise'])[1 + i %% 3] as tier
  from generate_series(1, %(users)s) as i""",
    "insert into auth.users (id, email) select id, 'analytics-' || id || '@bench.test' from bench_users",
    """insert into public.users (id, email, subscription_tier, created_at)
  select id, 'analytics-' || id || '@bench.test', tier, now() - (i %% 120) * interval '1 day' from bench_users""",
    """insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,
    completion_tokens, cost, subscription_tier, created_at)
  select u.id, 'small_messages', m.model, m.model, 100 + r %% 900, 50 + r %% 400, (r %% 1000) * 0.000001,
         u.tier, now() - (r %% (%(days)s * 86400)) * interval '1 second'
  from generate_series(1, %(records)s) as r
  join bench_users u on u.i = 1 + r %% %(users)s
  cross join lateral (select 'vendor/model-' || (r %% 8) as model) m""",
    """insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id)
  select id, 'plan_' || tier, tier, 'active', 'sub_bench_' || i from bench_users
  where tier <> 'free' and i <= 6000""",
    """insert into public.subscription_charges (subscription_id, tier, provider_payment_id, amount, currency,
    charged_at)
  select s.id, s.tier, 'pay_bench_' || s.id || '_' || k, case s.tier when 'pro' then 999 else 4900 end, 'USD',
         now() - (k * 30) * interval '1 day' + interval '1 hour'
  from public.subscriptions s cross join generate_series(0, 2) as k""",
    # The migration's backfill of the rollups (20261122040000_admin.sql), for the bulk-loaded records.
    """insert into public.usage_daily (day, model_id, subscription_tier, shard, messages, prompt_tokens,
    completion_tokens, cost)
  select (r.created_at at time zone 'UTC')::date, r.model_id, coalesce(r.subscription_tier, 'free'),
         (hashtext(coalesce(r.user_id::text, '')) & 15)::smallint,
         count(*), sum(r.prompt_tokens), sum(r.completion_tokens), sum(r.cost)
  from public.usage_records r group by 1, 2, 3, 4""",
    """insert into public.usage_active_days (day, user_id)
  select distinct (r.created_at at time zone 'UTC')::date, r.user_id
  from public.usage_records r where r.user_id is not null""",
)
VACUUM = "vacuum analyze"

# The naive figures: straight from the usage records.
NAIVE = (
    """select (created_at at time zone 'UTC')::date as day, count(*), sum(total_tokens), sum(cost)
  from public.usage_records where created_at >= %(start)s and created_at < %(end)s group by 1 order by 1""",
    """select model_id, count(*), sum(total_tokens), sum(cost) from public.usage_records
  where created_at >= %(start)s and created_at < %(end)s group by 1 order by 4 desc""",
    """select subscription_tier, sum(cost) from public.usage_records
  where created_at >= %(start)s and created_at < %(end)s group by 1""",
    """select count(distinct user_id) from public.usage_records
  where created_at >= %(start)s and created_at < %(end)s""",
)
INSERT_USAGE = """
insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens, completion_tokens,
  cost) values (%s, 'small_messages', 'vendor/model-1', 'vendor/model-1', 10, 20, 0.0001)"""
ROLLUP_TRIGGERS = ("usage_records_tier", "usage_records_roll_up")


def _admin(url: str) -> Principal:
    with psycopg.connect(url) as conn:
        row = conn.execute("select id from public.users limit 1").fetchone()
    assert row is not None
    return Principal(user_id=row[0], email=None, role="authenticated", claims={}, is_admin=True)


def _insert_seconds(url: str, count: int, *, triggers: bool) -> list[float]:
    with psycopg.connect(url, autocommit=True) as conn:
        action = "enable" if triggers else "disable"
        for name in ROLLUP_TRIGGERS:
            conn.execute(f"alter table public.usage_records {action} trigger {name}")
        user_ids = [r[0] for r in conn.execute("select id from public.users limit 500").fetchall()]
        samples = []
        for n in range(WARMUP_INSERTS + count):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(INSERT_USAGE, (user_ids[n % len(user_ids)],))
            if n >= WARMUP_INSERTS:  # the session's first trigger calls compile and cache their plans
                samples.append(time.perf_counter() - started)
        for name in ROLLUP_TRIGGERS:
            conn.execute(f"alter table public.usage_records enable trigger {name}")
    return samples


def _measure_analytics(
    url: str, principal: Principal, query: AnalyticsQuery, runs: int
) -> tuple[list[float], int]:
    """Seconds per analytics call, and the replies it counted."""
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            figures = analytics(database, principal, query)  # warm the connection and the caches
            samples: list[float] = []
            for _ in range(runs):
                run_started = time.perf_counter()
                figures = analytics(database, principal, query)
                samples.append(time.perf_counter() - run_started)
        finally:
            database.close()
    return samples, sum(d.messages for d in figures.messages_by_day)


def _measure_naive(url: str, start: datetime, end: datetime, runs: int) -> tuple[list[float], int]:
    """Seconds per round of the naive queries, and the replies they counted."""
    samples: list[float] = []
    counted = 0
    with psycopg.connect(url) as conn:
        for _ in range(runs):
            run_started = time.perf_counter()
            with conn.transaction():
                results = [conn.execute(q, {"start": start, "end": end}).fetchall() for q in NAIVE]
            samples.append(time.perf_counter() - run_started)
            counted = sum(int(row[1]) for row in results[0])
    return samples, counted


def run(*, quick: bool = False) -> None:
    records = QUICK_RECORDS if quick else RECORDS
    runs = QUICK_RUNS if quick else RUNS
    inserts = QUICK_INSERTS if quick else INSERTS
    print(f"== admin_analytics: GET /admin/analytics over {records:,} usage records vs the naive queries ==")
    started = time.perf_counter()
    today = datetime.now(UTC).date()
    query = AnalyticsQuery(from_=today - timedelta(days=DAYS - 1), to=today)
    start = datetime.combine(query.first_day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=DAYS)
    with throwaway_database() as url:
        with psycopg.connect(url, autocommit=True) as admin:
            load_started = time.perf_counter()
            with admin.transaction():
                for statement in LOAD:
                    admin.execute(statement, {"users": USERS, "records": records, "days": DAYS})
            admin.execute(VACUUM)
            load_seconds = time.perf_counter() - load_started
            rollup_rows = admin.execute("select count(*) from public.usage_daily").fetchone()
        principal = _admin(url)

        fast, fast_messages = _measure_analytics(url, principal, query, runs)
        naive, naive_messages = _measure_naive(url, start, end, runs)
        if naive_messages != fast_messages or naive_messages != records:
            raise RuntimeError(f"the figures disagree: naive {naive_messages}, analytics {fast_messages}")

        without_triggers = _insert_seconds(url, inserts, triggers=False)
        with_triggers = _insert_seconds(url, inserts, triggers=True)
    total = time.perf_counter() - started

    fast_s, naive_s = summarize(fast), summarize(naive)
    print(
        f"{records:,} usage records over {DAYS} days ({rollup_rows[0] if rollup_rows else '?':,} rollup rows),"
        f" {USERS:,} users, loaded in {load_seconds:.1f} s; whole run {total:.1f} s"
    )
    print(
        table(
            ("variant", "runs", "median ms", "p95 ms", "min ms"),
            [
                [
                    "analytics (every figure, rollups)",
                    str(fast_s.n),
                    ms(fast_s.median),
                    ms(fast_s.p95),
                    ms(fast_s.min),
                ],
                [
                    "baseline: usage figures from usage_records",
                    str(naive_s.n),
                    ms(naive_s.median),
                    ms(naive_s.p95),
                    ms(naive_s.min),
                ],
            ],
        )
    )
    with_s, without_s = summarize(with_triggers), summarize(without_triggers)
    print(
        f"a usage insert (own transaction): {ms(with_s.median, 3)} ms median with the rollup triggers,"
        f" {ms(without_s.median, 3)} ms without ({inserts:,} each)"
    )
    print(f"analytics is {naive_s.median / fast_s.median:.0f}x faster than the naive usage queries alone")
    verdict = "PASS" if fast_s.median < GOAL_SECONDS else "MISS"
    label = "quick run, judged on the full run" if quick else verdict
    print(
        f"goal: analytics over {RECORDS:,} usage records in < {GOAL_SECONDS:.0f} s: {ms(fast_s.median)} ms  {label}"
    )


if __name__ == "__main__":
    run()
