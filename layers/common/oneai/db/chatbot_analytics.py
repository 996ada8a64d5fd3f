"""Data layer of the chatbots' analytics (issue 28 item 2; migration 20261129020000_analytics.sql).

The job's statements run as the service (the rollups are the service's to write; every workspace's rows):
- `claim_dirty_days` takes a bounded batch of the (workspace, UTC day) marks the visitor tables' triggers
  left, in its own short transaction (`for update skip locked`: two runs never take the same mark);
- `recompute_days` rebuilds those pairs' rollup rows from the raw rows in one statement, after taking a
  transaction advisory lock per pair (so two runs recomputing the same pair follow each other, the second
  reading what the first committed), and `release_claim` deletes the claimed marks in the same transaction;
- `pending_questions`, `nearest_leader` and `insert_question` keep `chatbot_questions`.

The route's statements (`daily_rows`, `histograms`, `top_questions`, `chatbot_names`, `chatbot_in_workspace`) run as the
caller, under the tables' policies (the workspace's members, viewer and up; nobody else sees a row).
This is not `oneai.db.analytics`, which holds the admin's platform-wide analytics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.connection import Connection
from oneai.db.knowledge import vector_literal

CLAIM_DIRTY_DAYS = """
with picked as (
  select d.id from oneai_private.analytics_dirty_days d
  where d.claimed_at is null or d.claimed_at < now() - make_interval(secs => %(lease_seconds)s)
  order by d.id
  limit %(limit)s
  for update skip locked
)
update oneai_private.analytics_dirty_days d set claimed_at = now(), claim = %(claim)s
from picked where d.id = picked.id
returning d.workspace_id, d.day"""

RELEASE_CLAIM = "delete from oneai_private.analytics_dirty_days where claim = %s"

COUNT_DIRTY = "select count(*) as n from oneai_private.analytics_dirty_days"

# A recompute reads a day's messages of a workspace: a busy workspace's day may take longer than the API's
# statement timeout (ONEAI_DB_STATEMENT_TIMEOUT_MS, 10 s), so the job's recompute transaction has its own.
RECOMPUTE_TIMEOUT = "select set_config('statement_timeout', %s, true)"
RECOMPUTE_TIMEOUT_MS: Final = 120_000

LOCK_DAYS = """
select pg_advisory_xact_lock(hashtextextended('analytics:' || p.workspace_id::text || ':' || p.day::text, 0))
from unnest(%(workspaces)s::uuid[], %(days)s::date[]) p(workspace_id, day)
order by p.workspace_id, p.day"""

_HISTOGRAM = """
  select h.workspace_id, h.day, h.chatbot_id, array_agg(h.bucket order by h.bucket) as buckets,
         array_agg(h.n order by h.bucket) as counts
  from (
    select s.workspace_id, s.day, s.chatbot_id, oneai_private.latency_bucket(s.{column}) as bucket, count(*)::int as n
    from sent s where s.role = 'assistant' and s.{column} is not null
    group by 1, 2, 3, 4
  ) h
  group by 1, 2, 3"""

# The pairs' rows from the raw rows: messages sent that day (visitors' and replies, with the replies'
# timings), conversations started that day with all their messages and their ratings. Rows of a pair that
# no longer has anything (a conversation deleted, a late change moving a row) are deleted (`removed` runs
# whether or not it is read, on the same snapshot as the insert); a conversation
# without a chatbot (the chatbot purged with keep_conversations) counts for nobody.
RECOMPUTE_DAYS = f"""
with pairs as (
  select distinct p.workspace_id, p.day, p.day::timestamp at time zone 'UTC' as lo,
         (p.day + 1)::timestamp at time zone 'UTC' as hi
  from unnest(%(workspaces)s::uuid[], %(days)s::date[]) p(workspace_id, day)
),
sent as (
  select p.workspace_id, p.day, vc.chatbot_id, m.role, m.ttft_ms, m.total_ms
  from pairs p
  cross join lateral (  -- per pair: a range of idx_visitor_messages_workspace, not every message
    select m.conversation_id, m.role, m.ttft_ms, m.total_ms from public.visitor_messages m
    where m.workspace_id = p.workspace_id and m.created_at >= p.lo and m.created_at < p.hi
    offset 0  -- kept a subquery run per pair: flattened, the planner scans every message against every pair
  ) m
  join public.visitor_conversations vc on vc.id = m.conversation_id
  where vc.chatbot_id is not null
),
message_counts as (
  select s.workspace_id, s.day, s.chatbot_id, count(*)::int as messages from sent s group by 1, 2, 3
),
ttft as ({_HISTOGRAM.format(column="ttft_ms")}),
total as ({_HISTOGRAM.format(column="total_ms")}),
started as (
  select p.workspace_id, p.day, vc.chatbot_id, count(*)::int as conversations,
         coalesce(sum((select count(*) from public.visitor_messages m where m.conversation_id = vc.id)), 0)::int
           as conversation_messages,
         count(vc.rating)::int as rated,
         array[count(*) filter (where vc.rating = 1), count(*) filter (where vc.rating = 2),
               count(*) filter (where vc.rating = 3), count(*) filter (where vc.rating = 4),
               count(*) filter (where vc.rating = 5)]::int[] as by_score
  from pairs p
  cross join lateral (  -- per pair: a range of idx_visitor_conversations_workspace
    select vc.id, vc.chatbot_id, vc.rating from public.visitor_conversations vc
    where vc.workspace_id = p.workspace_id and vc.started_at >= p.lo and vc.started_at < p.hi
      and vc.chatbot_id is not null
    offset 0
  ) vc
  group by 1, 2, 3
),
keys as (
  select workspace_id, day, chatbot_id from message_counts
  union
  select workspace_id, day, chatbot_id from started
),
removed as (
  delete from public.chatbot_daily_analytics a
  using pairs p
  where a.workspace_id = p.workspace_id and a.day = p.day
    and not exists (select 1 from keys k
                    where k.workspace_id = a.workspace_id and k.day = a.day and k.chatbot_id = a.chatbot_id)
  returning 1
)
insert into public.chatbot_daily_analytics as a (
  workspace_id, chatbot_id, day, messages, conversations, conversation_messages, rated, by_score,
  ttft_buckets, ttft_counts, total_buckets, total_counts, computed_at)
select k.workspace_id, k.chatbot_id, k.day, coalesce(mc.messages, 0), coalesce(st.conversations, 0),
       coalesce(st.conversation_messages, 0), coalesce(st.rated, 0), coalesce(st.by_score, '{{0,0,0,0,0}}'),
       coalesce(tt.buckets, '{{}}'), coalesce(tt.counts, '{{}}'), coalesce(tl.buckets, '{{}}'),
       coalesce(tl.counts, '{{}}'), now()
from keys k
left join message_counts mc using (workspace_id, day, chatbot_id)
left join started st using (workspace_id, day, chatbot_id)
left join ttft tt using (workspace_id, day, chatbot_id)
left join total tl using (workspace_id, day, chatbot_id)
where exists (select 1 from public.chatbots c where c.id = k.chatbot_id and c.workspace_id = k.workspace_id)
on conflict (workspace_id, day, chatbot_id) do update set
  messages = excluded.messages, conversations = excluded.conversations,
  conversation_messages = excluded.conversation_messages, rated = excluded.rated, by_score = excluded.by_score,
  ttft_buckets = excluded.ttft_buckets, ttft_counts = excluded.ttft_counts,
  total_buckets = excluded.total_buckets, total_counts = excluded.total_counts, computed_at = excluded.computed_at
returning 1"""

# Conversations whose first visitor question is not kept yet, oldest first (so a cluster's first member,
# its label, is the question asked first); the first visitor message that is not blank.
PENDING_QUESTIONS = """
select vc.id as conversation_id, vc.workspace_id, vc.chatbot_id, vc.started_at, first.content
from public.visitor_conversations vc
cross join lateral (
  select m.content from public.visitor_messages m
  where m.conversation_id = vc.id and m.role = 'user' and btrim(m.content) <> ''
  order by m.sequence_number
  limit 1
) first
where vc.chatbot_id is not null
  and not exists (select 1 from public.chatbot_questions q where q.conversation_id = vc.id)
order by vc.started_at, vc.id
limit %(limit)s"""

LOCK_WORKSPACE_QUESTIONS = "select pg_advisory_xact_lock(hashtextextended('analytics-questions:' || %s::text, 0))"

# The workspace's cluster leader (the first question of each cluster) closest to the embedding, exactly (no
# approximate index: a workspace has few leaders, and a missed neighbour would split a cluster).
NEAREST_LEADER = """
select q.cluster_id, 1 - (q.embedding operator(extensions.<=>) %(embedding)s::extensions.vector) as similarity
from public.chatbot_questions q
where q.workspace_id = %(workspace_id)s and q.cluster_id = q.conversation_id
order by q.embedding operator(extensions.<=>) %(embedding)s::extensions.vector, q.started_at
limit 1"""

INSERT_QUESTION = """
insert into public.chatbot_questions (conversation_id, workspace_id, chatbot_id, started_at, question, embedding,
  cluster_id)
select %(conversation_id)s, %(workspace_id)s, %(chatbot_id)s, %(started_at)s, %(question)s,
       %(embedding)s::extensions.vector, coalesce(%(cluster_id)s, %(conversation_id)s)
where exists (select 1 from public.visitor_conversations vc
              where vc.id = %(conversation_id)s and vc.chatbot_id = %(chatbot_id)s)
on conflict (conversation_id) do nothing
returning conversation_id"""

# --- the route, as the caller ---------------------------------------------------------------------------

_RANGE = """a.workspace_id = %(workspace_id)s and a.day between %(first)s and %(last)s
  and (%(chatbot_id)s::uuid is null or a.chatbot_id = %(chatbot_id)s)"""

DAILY_ROWS = f"""
select a.chatbot_id, a.day, a.messages, a.conversations, a.conversation_messages, a.rated, a.by_score,
       a.computed_at
from public.chatbot_daily_analytics a
where {_RANGE}
order by a.day, a.chatbot_id"""

# The range's histograms per chatbot, merged by the database (the days' arrays never leave it).
HISTOGRAMS = f"""
select h.chatbot_id, h.kind, array_agg(h.bucket order by h.bucket) as buckets, array_agg(h.n order by h.bucket) as counts
from (
  select a.chatbot_id, 'ttft' as kind, u.bucket, sum(u.n)::int as n
  from public.chatbot_daily_analytics a cross join unnest(a.ttft_buckets, a.ttft_counts) u(bucket, n)
  where {_RANGE}
  group by 1, 3
  union all
  select a.chatbot_id, 'total' as kind, u.bucket, sum(u.n)::int as n
  from public.chatbot_daily_analytics a cross join unnest(a.total_buckets, a.total_counts) u(bucket, n)
  where {_RANGE}
  group by 1, 3
) h
group by 1, 2"""

TOP_QUESTIONS = """
with counted as (
  select q.cluster_id, count(*)::int as n
  from public.chatbot_questions q
  where q.workspace_id = %(workspace_id)s
    and q.started_at >= %(first)s::date::timestamp at time zone 'UTC'
    and q.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
    and (%(chatbot_id)s::uuid is null or q.chatbot_id = %(chatbot_id)s)
  group by q.cluster_id
  order by n desc, q.cluster_id
  limit %(limit)s
)
select (select q.question from public.chatbot_questions q where q.cluster_id = c.cluster_id
        order by q.started_at, q.conversation_id limit 1) as question,
       c.n as count
from counted c
order by c.n desc, question"""

CHATBOT_NAMES = "select c.id, c.name from public.chatbots c where c.workspace_id = %s and c.id = any(%s::uuid[])"
CHATBOT_IN_WORKSPACE = "select 1 from public.chatbots c where c.id = %s and c.workspace_id = %s"

NOT_A_CLAIM: Final = UUID(int=0)


@dataclass(frozen=True, slots=True)
class DayKey:
    workspace_id: UUID
    day: date


@dataclass(frozen=True, slots=True)
class DailyRow:
    chatbot_id: UUID
    day: date
    messages: int
    conversations: int
    conversation_messages: int
    rated: int
    by_score: list[int]
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class HistogramRow:
    chatbot_id: UUID
    kind: str  # ttft | total
    buckets: list[int]
    counts: list[int]


@dataclass(frozen=True, slots=True)
class PendingQuestion:
    conversation_id: UUID
    workspace_id: UUID
    chatbot_id: UUID
    started_at: datetime
    content: str


@dataclass(frozen=True, slots=True)
class Leader:
    cluster_id: UUID
    similarity: float


@dataclass(frozen=True, slots=True)
class QuestionCount:
    question: str
    count: int


def claim_dirty_days(conn: Connection, claim: UUID, *, limit: int, lease_seconds: int) -> list[DayKey]:
    with conn.cursor(row_factory=class_row(DayKey)) as cur:
        rows = cur.execute(
            CLAIM_DIRTY_DAYS, {"claim": claim, "limit": limit, "lease_seconds": lease_seconds}
        ).fetchall()
    return sorted(set(rows), key=lambda k: (str(k.workspace_id), k.day))


def recompute_days(conn: Connection, keys: Sequence[DayKey]) -> int:
    """Lock the pairs (sorted, so two runs cannot deadlock), then rebuild their rows; the rows written."""
    params = {"workspaces": [k.workspace_id for k in keys], "days": [k.day for k in keys]}
    conn.execute(RECOMPUTE_TIMEOUT, (str(RECOMPUTE_TIMEOUT_MS),))
    conn.execute(LOCK_DAYS, params)
    return len(conn.execute(RECOMPUTE_DAYS, params).fetchall())


def release_claim(conn: Connection, claim: UUID) -> None:
    conn.execute(RELEASE_CLAIM, (claim,))


def count_dirty(conn: Connection) -> int:
    row = conn.execute(COUNT_DIRTY).fetchone()
    assert row is not None
    return int(row["n"])


def pending_questions(conn: Connection, *, limit: int) -> list[PendingQuestion]:
    with conn.cursor(row_factory=class_row(PendingQuestion)) as cur:
        return cur.execute(PENDING_QUESTIONS, {"limit": limit}).fetchall()


def lock_workspace_questions(conn: Connection, workspace_id: UUID) -> None:
    conn.execute(LOCK_WORKSPACE_QUESTIONS, (workspace_id,))


def nearest_leader(conn: Connection, workspace_id: UUID, embedding: Sequence[float]) -> Leader | None:
    with conn.cursor(row_factory=class_row(Leader)) as cur:
        return cur.execute(
            NEAREST_LEADER, {"workspace_id": workspace_id, "embedding": vector_literal(embedding)}
        ).fetchone()


def insert_question(
    conn: Connection, question: PendingQuestion, text: str, embedding: Sequence[float], cluster_id: UUID | None
) -> bool:
    row = conn.execute(
        INSERT_QUESTION,
        {
            "conversation_id": question.conversation_id,
            "workspace_id": question.workspace_id,
            "chatbot_id": question.chatbot_id,
            "started_at": question.started_at,
            "question": text,
            "embedding": vector_literal(embedding),
            "cluster_id": cluster_id,
        },
    ).fetchone()
    return row is not None


def daily_rows(
    conn: Connection, workspace_id: UUID, first: date, last: date, chatbot_id: UUID | None
) -> list[DailyRow]:
    with conn.cursor(row_factory=class_row(DailyRow)) as cur:
        return cur.execute(
            DAILY_ROWS, {"workspace_id": workspace_id, "first": first, "last": last, "chatbot_id": chatbot_id}
        ).fetchall()


def histograms(
    conn: Connection, workspace_id: UUID, first: date, last: date, chatbot_id: UUID | None
) -> list[HistogramRow]:
    with conn.cursor(row_factory=class_row(HistogramRow)) as cur:
        return cur.execute(
            HISTOGRAMS, {"workspace_id": workspace_id, "first": first, "last": last, "chatbot_id": chatbot_id}
        ).fetchall()


def top_questions(
    conn: Connection, workspace_id: UUID, first: date, last: date, chatbot_id: UUID | None, *, limit: int
) -> list[QuestionCount]:
    params = {"workspace_id": workspace_id, "first": first, "last": last, "chatbot_id": chatbot_id, "limit": limit}
    with conn.cursor(row_factory=class_row(QuestionCount)) as cur:
        return cur.execute(TOP_QUESTIONS, params).fetchall()


def chatbot_names(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> dict[UUID, str]:
    rows = conn.execute(CHATBOT_NAMES, (workspace_id, list(ids))).fetchall()
    return {row["id"]: row["name"] for row in rows}


def chatbot_in_workspace(conn: Connection, chatbot_id: UUID, workspace_id: UUID) -> bool:
    return conn.execute(CHATBOT_IN_WORKSPACE, (chatbot_id, workspace_id)).fetchone() is not None
