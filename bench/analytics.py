"""Chatbot analytics (issue 28 item 2): `GET /workspaces/{id}/analytics` over 90 days and 1,000,000 visitor
messages, read from the rollups, against the same figures computed from the raw rows, in the same run; what
the rollup job takes to build the rollups from nothing; what its triggers cost a message insert.

Data (in a throwaway database): one workspace, 5 chatbots, 100,000 visitor conversations started over the
90 UTC days before today (a third rated 1-5), 10 messages each (visitor and reply in turn, the replies with
ttft_ms/total_ms), inserted with generate_series in one statement each, so the triggers mark the touched
days as they would; 10,000 of the conversations with a first question in one of 20 clusters. Then the job
(`oneai.analytics.rollup.refresh_rollups`) recomputes every marked day, and VACUUM ANALYZE runs as
autovacuum would. `--quick`: 100,000 messages.

Measured (median and p95 of the runs; each a fresh user transaction as the workspace's owner):
- route: `oneai.analytics.service.analytics` over the 90 days, as the route runs it (every figure, with
  the top questions and per chatbot);
- baseline: the same figures straight from visitor_messages/visitor_conversations (per day; conversations,
  their messages and ratings; exact percentile_disc of ttft and total; top question clusters), on their
  existing indexes;
- job: the rollups built from nothing (every day marked), once;
- write cost: single-message inserts (own transaction each) with the analytics triggers and without.
Goal (issue 28): the 90-day answer over 1,000,000 messages well under a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from oneai.analytics import service
from oneai.analytics.models import AnalyticsQuery
from oneai.analytics.percentiles import RELATIVE_ERROR
from oneai.analytics.rollup import refresh_rollups
from oneai.auth import Principal
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.db.knowledge import vector_literal
from oneai.knowledge.offline_embedding import offline_embedding

MESSAGES: Final = 1_000_000
QUICK_MESSAGES: Final = 100_000
PER_CONVERSATION: Final = 10
CHATBOTS: Final = 5
DAYS: Final = 90
QUESTION_CONVERSATIONS: Final = 10_000
CLUSTERS: Final = 20
RUNS: Final = 9
QUICK_RUNS: Final = 3
INSERTS: Final = 1_000
QUICK_INSERTS: Final = 200
WARMUP_INSERTS: Final = 100
GOAL_SECONDS: Final = 1.0

OWNER = UUID("00000000-0000-4000-8000-00000000a001")
WORKSPACE = UUID("00000000-0000-4000-8000-00000000a002")

SETUP = (
    "insert into auth.users (id, email) values (%(owner)s, 'analytics-owner@bench.test')",
    "insert into public.workspaces (id, name, slug, owner_id) values (%(workspace)s, 'Bench', 'bench-analytics',"
    " %(owner)s)",
    "insert into public.workspace_members (workspace_id, user_id, role) values (%(workspace)s, %(owner)s, 'owner')",
    """insert into public.chatbots (workspace_id, name, model, status)
  select %(workspace)s, 'Bot ' || b, 'openai/gpt-4o-mini', 'active' from generate_series(1, %(chatbots)s) b""",
)
# Conversations spread over the 90 days before today (today's 00:00 UTC is %(start)s + 90 days).
CONVERSATIONS = """
insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_id, rating, rated_at, started_at)
select %(workspace)s, b.ids[1 + (c / %(days)s) %% %(chatbots)s], 'visitor-' || lpad(c::text, 12, '0'),
       case when c %% 3 = 0 then 1 + (c / 3) %% 5 end,
       case when c %% 3 = 0 then %(start)s::timestamptz + interval '91 days' end,
       %(start)s::timestamptz + (c %% %(days)s) * interval '1 day' + ((c * 7919) %% 84000) * interval '1 second'
from generate_series(1, %(conversations)s) c
cross join (select array_agg(id order by name) as ids from public.chatbots where workspace_id = %(workspace)s) b"""
# Ten messages each, in one statement: the triggers see one transition table, as a bulk import would.
MESSAGES_SQL = """
insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number, ttft_ms,
  total_ms, created_at)
select vc.id, vc.workspace_id, case when k %% 2 = 1 then 'user' else 'assistant' end, 'message ' || k, k,
       case when k %% 2 = 0 then 150 + (abs(hashtext(vc.id::text || k)) %% 2850) end,
       case when k %% 2 = 0 then 150 + (abs(hashtext(vc.id::text || k)) %% 2850)
                                 + (abs(hashtext(k || vc.id::text)) %% 9000) end,
       vc.started_at + k * interval '20 seconds'
from public.visitor_conversations vc cross join generate_series(1, %(per)s) k
where vc.workspace_id = %(workspace)s"""
QUESTIONS = """
insert into public.chatbot_questions (conversation_id, workspace_id, chatbot_id, started_at, question, embedding,
  cluster_id)
select vc.id, vc.workspace_id, vc.chatbot_id, vc.started_at, q.text, q.embedding::extensions.vector,
       first_value(vc.id) over (partition by q.n order by vc.started_at, vc.id)
from (select vc.*, row_number() over (order by vc.id) as r from public.visitor_conversations vc
      where vc.workspace_id = %(workspace)s) vc
join unnest(%(texts)s::text[], %(embeddings)s::text[]) with ordinality q(text, embedding, n)
  on q.n = 1 + vc.r %% %(clusters)s
where vc.r <= %(questions)s"""
MARK_ALL = """
insert into oneai_private.analytics_dirty_days (workspace_id, day)
select %(workspace)s, d::date from generate_series(%(start)s::date, %(start)s::date + %(days)s, interval '1 day') d
on conflict (workspace_id, day) where claimed_at is null do nothing"""

_SCOPE = """
from public.visitor_messages m join public.visitor_conversations vc on vc.id = m.conversation_id
where vc.workspace_id = %(w)s and vc.chatbot_id is not null
  and m.created_at >= %(first)s::date::timestamp at time zone 'UTC'
  and m.created_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'"""
# The route's figures straight from the raw rows.
NAIVE = (
    "select (m.created_at at time zone 'UTC')::date as day, count(*)" + _SCOPE + " group by 1 order by 1",
    """select vc.chatbot_id, count(*),
       sum((select count(*) from public.visitor_messages m where m.conversation_id = vc.id)),
       count(vc.rating), avg(vc.rating), count(*) filter (where vc.rating = 5)
from public.visitor_conversations vc
where vc.workspace_id = %(w)s and vc.chatbot_id is not null
  and vc.started_at >= %(first)s::date::timestamp at time zone 'UTC'
  and vc.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
group by 1""",
    "select percentile_disc(0.5) within group (order by m.ttft_ms), percentile_disc(0.95) within group"
    " (order by m.ttft_ms), percentile_disc(0.5) within group (order by m.total_ms), percentile_disc(0.95)"
    " within group (order by m.total_ms)" + _SCOPE + " and m.role = 'assistant' and m.ttft_ms is not null",
    """select q.cluster_id, count(*) from public.chatbot_questions q
where q.workspace_id = %(w)s and q.started_at >= %(first)s::date::timestamp at time zone 'UTC'
  and q.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
group by 1 order by 2 desc limit 10""",
)
INSERT_MESSAGE = """
insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number, ttft_ms,
  total_ms)
values (%s, %s, 'assistant', 'one more reply', %s, 300, 900)"""
TRIGGERS = ("visitor_messages_analytics_insert",)


def _seed(url: str, messages: int, today: datetime) -> tuple[float, int]:
    start = today - timedelta(days=DAYS)
    conversations = messages // PER_CONVERSATION
    texts = [f"Question number {n} about topic {n * 37 % 101}?" for n in range(CLUSTERS)]
    params = {
        "owner": OWNER,
        "workspace": WORKSPACE,
        "chatbots": CHATBOTS,
        "start": start,
        "days": DAYS,
        "conversations": conversations,
        "per": PER_CONVERSATION,
        "texts": texts,
        "embeddings": [vector_literal(offline_embedding(t)) for t in texts],
        "clusters": CLUSTERS,
        "questions": min(QUESTION_CONVERSATIONS, conversations // 10),
    }
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as admin:
        with admin.transaction():
            for statement in (*SETUP, CONVERSATIONS, MESSAGES_SQL, QUESTIONS):
                admin.execute(statement, params)
        admin.execute("vacuum analyze")
        marks = admin.execute("select count(*) from oneai_private.analytics_dirty_days").fetchone()
    return time.perf_counter() - started, int(marks[0]) if marks else 0


def _build_rollups(url: str, today: datetime) -> tuple[float, int]:
    """The job from nothing: every day marked (the bulk insert marked them already), recomputed."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(MARK_ALL, {"workspace": WORKSPACE, "start": today - timedelta(days=DAYS), "days": DAYS})
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            started = time.perf_counter()
            days, _, _, _ = refresh_rollups(database, max_days=10_000)
            seconds = time.perf_counter() - started
        finally:
            database.close()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("vacuum analyze public.chatbot_daily_analytics")
    return seconds, days


def _measure_route(url: str, query: AnalyticsQuery, runs: int) -> tuple[list[float], service.Analytics]:
    principal = Principal(user_id=OWNER, email=None, role="authenticated", claims={})
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            with database.user_transaction(principal) as conn:
                report = service.analytics(conn, WORKSPACE, query)  # warm the connection and caches
            samples: list[float] = []
            for _ in range(runs):
                run_started = time.perf_counter()
                with database.user_transaction(principal) as conn:
                    report = service.analytics(conn, WORKSPACE, query)
                samples.append(time.perf_counter() - run_started)
        finally:
            database.close()
    return samples, report


def _measure_naive(url: str, query: AnalyticsQuery, runs: int) -> tuple[list[float], list[list[tuple[Any, ...]]]]:
    params = {"w": WORKSPACE, "first": query.first_day, "last": query.last_day}
    samples: list[float] = []
    results: list[list[tuple[Any, ...]]] = []
    with psycopg.connect(url) as conn:
        for _ in range(runs):
            run_started = time.perf_counter()
            with conn.transaction():
                results = [conn.execute(q, params).fetchall() for q in NAIVE]
            samples.append(time.perf_counter() - run_started)
    return samples, results


def _check(report: service.Analytics, naive: list[list[tuple[Any, ...]]], messages: int) -> None:
    """The route's figures are the raw rows' (percentiles within the documented bound)."""
    by_day, started, percentiles, questions = naive
    problems = []
    if report.messages != messages or sum(int(r[1]) for r in by_day) != messages:
        problems.append(f"messages {report.messages} / {sum(int(r[1]) for r in by_day)} / {messages}")
    if [d.messages for d in report.messages_by_day if d.messages] != [int(r[1]) for r in by_day]:
        problems.append("messages by day")
    if report.conversations != sum(int(r[1]) for r in started):
        problems.append("conversations")
    if report.satisfaction.rated != sum(int(r[3]) for r in started):
        problems.append("rated")
    if report.satisfaction.by_score["5"] != sum(int(r[5]) for r in started):
        problems.append("score 5")
    exact = [int(v) for v in percentiles[0]]
    rt = report.response_time
    for estimate, value in zip((rt.ttft_p50_ms, rt.ttft_p95_ms, rt.p50_ms, rt.p95_ms), exact, strict=True):
        if estimate is None or abs(estimate - value) > RELATIVE_ERROR * value + 0.5:
            problems.append(f"percentile {estimate} vs exact {value}")
    if [q.count for q in report.top_questions] != [int(r[1]) for r in questions]:
        problems.append("top questions")
    if problems:
        raise RuntimeError(f"the route's figures disagree with the rows: {problems}")


def _insert_seconds(url: str, count: int, *, triggers: bool) -> list[float]:
    with psycopg.connect(url, autocommit=True) as conn:
        action = "enable" if triggers else "disable"
        for name in TRIGGERS:
            conn.execute(f"alter table public.visitor_messages {action} trigger {name}")
        conversations = [
            r[0]
            for r in conn.execute(
                "select id from public.visitor_conversations where workspace_id = %s limit 500", (WORKSPACE,)
            ).fetchall()
        ]
        base = 1000 if triggers else 100_000
        samples = []
        for n in range(WARMUP_INSERTS + count):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    INSERT_MESSAGE,
                    (conversations[n % len(conversations)], WORKSPACE, base + n // len(conversations)),
                )
            if n >= WARMUP_INSERTS:
                samples.append(time.perf_counter() - started)
        for name in TRIGGERS:
            conn.execute(f"alter table public.visitor_messages enable trigger {name}")
    return samples


def run(*, quick: bool = False) -> None:
    messages = QUICK_MESSAGES if quick else MESSAGES
    runs = QUICK_RUNS if quick else RUNS
    inserts = QUICK_INSERTS if quick else INSERTS
    print(
        f"== analytics: GET /workspaces/{{id}}/analytics over {DAYS} days, {messages:,} messages vs the raw rows =="
    )
    started = time.perf_counter()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    query = AnalyticsQuery.model_validate(
        {
            "from": (today - timedelta(days=DAYS)).date().isoformat(),
            "to": (today - timedelta(days=1)).date().isoformat(),
        }
    )
    with throwaway_database() as url:
        load_seconds, marks = _seed(url, messages, today)
        job_seconds, job_days = _build_rollups(url, today)
        route, report = _measure_route(url, query, runs)
        naive, results = _measure_naive(url, query, runs)
        _check(report, results, messages)
        without_triggers = _insert_seconds(url, inserts, triggers=False)
        with_triggers = _insert_seconds(url, inserts, triggers=True)
        with psycopg.connect(url) as conn:
            rows = conn.execute("select count(*) from public.chatbot_daily_analytics").fetchone()
    total = time.perf_counter() - started
    route_s, naive_s = summarize(route), summarize(naive)
    print(
        f"{messages:,} messages in {messages // PER_CONVERSATION:,} conversations, {CHATBOTS} chatbots, {DAYS} days;"
        f" loaded in {load_seconds:.1f} s (the triggers marked {marks} days); whole run {total:.1f} s"
    )
    print(
        f"job: {job_days} (workspace, day) pairs recomputed from the raw rows in {job_seconds:.2f} s"
        f" ({rows[0] if rows else '?'} rollup rows)"
    )
    print(
        table(
            ("variant", "runs", "median ms", "p95 ms", "min ms"),
            [
                ["route (rollups, every figure)", str(route_s.n), ms(route_s.median), ms(route_s.p95), ms(route_s.min)],
                ["baseline: the figures from the raw rows", str(naive_s.n), ms(naive_s.median), ms(naive_s.p95),
                 ms(naive_s.min)],
            ],
        )
    )  # fmt: skip
    with_s, without_s = summarize(with_triggers), summarize(without_triggers)
    print(
        f"a message insert (own transaction): {ms(with_s.median, 3)} ms median with the analytics trigger,"
        f" {ms(without_s.median, 3)} ms without ({inserts:,} each)"
    )
    print(f"the route is {naive_s.median / route_s.median:.0f}x faster than the raw-row queries (medians)")
    verdict = "PASS" if route_s.p95 < GOAL_SECONDS else "MISS"
    label = "quick run, judged on the full run" if quick else verdict
    print(
        f"goal: the 90-day answer over {MESSAGES:,} messages in < {GOAL_SECONDS:.0f} s (p95): {ms(route_s.p95)} ms  {label}"
    )


if __name__ == "__main__":
    run()
