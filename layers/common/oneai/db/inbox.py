"""Data layer of the inbox (API.md "Chatbot conversations (the inbox)"): a chatbot's visitor conversations
as its workspace's editors read, triage, delete, count and export them.

Every statement runs as the caller, under the visitor tables' policies (20261127000000_widget.sql: the
workspace's editors and above read, change status/tags/notes and delete; viewers and non-members see
nothing). The list goes through public.inbox_conversations (20261128010000_inbox.sql), which applies the
same membership rule itself so that the full-text query can use the messages' GIN index.

The export reads through a server-side cursor (`export_rows`): one row per conversation, its messages
aggregated in it, fetched `EXPORT_BATCH` rows at a time, so the whole export is never in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row, dict_row

from oneai.db.connection import Connection

EXPORT_BATCH: Final = 1000


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: UUID
    visitor_id: str
    page_url: str | None
    referrer: str | None
    user_agent: str | None
    locale: str | None
    started_at: datetime
    last_message_at: datetime | None
    messages: int
    rating: int | None
    status: str
    tags: list[str]
    match_message_id: UUID | None
    match_snippet: str | None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: UUID
    workspace_id: UUID
    chatbot_id: UUID | None
    visitor_id: str
    page_url: str | None
    referrer: str | None
    user_agent: str | None
    locale: str | None
    status: str
    tags: list[str]
    notes: str | None
    rating: int | None
    rating_comment: str | None
    rated_at: datetime | None
    started_at: datetime
    last_message_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: UUID
    role: str
    content: str
    status: str
    model_id: str | None
    sources: list[dict[str, Any]] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    conversations: int
    messages: int
    avg_rating: float | None


@dataclass(frozen=True, slots=True)
class TotalsRow:
    total: int
    messages: int
    avg_rating: float | None


LIST = """
select id, visitor_id, page_url, referrer, user_agent, locale, started_at, last_message_at, messages, rating,
       status, tags, match_message_id, match_snippet
from public.inbox_conversations(%(chatbot_id)s, %(from)s, %(to)s, %(status)s, %(rating)s, %(query)s,
                                %(after_started)s, %(after_id)s, %(limit)s)"""

# The visitor as the conversation recorded it at its start, else as the visitor's row says now.
_CONVERSATION_COLUMNS = """vc.id, vc.workspace_id, vc.chatbot_id, vc.visitor_id,
  coalesce(vc.page_url, v.page_url) as page_url, coalesce(vc.referrer, v.referrer) as referrer,
  coalesce(vc.user_agent, v.user_agent) as user_agent, coalesce(vc.locale, v.locale) as locale,
  vc.status, vc.tags, vc.notes, vc.rating, vc.rating_comment, vc.rated_at, vc.started_at,
  coalesce(vc.last_message_at, (select max(m.created_at) from public.visitor_messages m
                                where m.conversation_id = vc.id)) as last_message_at,
  vc.updated_at"""

GET = f"""
select {_CONVERSATION_COLUMNS}
from public.visitor_conversations vc left join public.widget_visitors v on v.id = vc.visitor_ref
where vc.id = %s"""

MESSAGES = """
select id, role, content, status, model_id, sources, created_at from public.visitor_messages
where conversation_id = %s order by sequence_number"""

# Only the columns the editors' grant allows (status, tags, notes); `updated_at` is the trigger's.
UPDATE = """
update public.visitor_conversations set
  notes = case when %(set_notes)s then %(notes)s else notes end,
  tags = case when %(set_tags)s then %(tags)s::text[] else tags end,
  status = case when %(set_status)s then %(status)s else status end
where id = %(id)s
returning id"""

# The conversation's workspace when the caller is a member of it with any role (a viewer is told 403).
MEMBER_WORKSPACE = "select oneai_private.visitor_conversation_workspace(%s) as workspace_id"

DELETE = "delete from public.visitor_conversations where id = %s returning id"
BULK_DELETE = """
delete from public.visitor_conversations where chatbot_id = %s and id = any(%s::uuid[]) returning id"""

# Conversations started on each UTC day of [first, last], their messages and average rating.
DAILY = """
with days as (
  select d::date as day from generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
),
started as (
  select (vc.started_at at time zone 'UTC')::date as day, count(*)::int as conversations,
         avg(vc.rating)::float8 as avg_rating
  from public.visitor_conversations vc
  where vc.chatbot_id = %(chatbot_id)s
    and vc.started_at >= %(first)s::date::timestamp at time zone 'UTC'
    and vc.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
  group by 1
),
sent as (
  select (m.created_at at time zone 'UTC')::date as day, count(*)::int as messages
  from public.visitor_messages m
  join public.visitor_conversations vc on vc.id = m.conversation_id
  where vc.chatbot_id = %(chatbot_id)s
    and m.created_at >= %(first)s::date::timestamp at time zone 'UTC'
    and m.created_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
  group by 1
)
select days.day, coalesce(started.conversations, 0) as conversations, coalesce(sent.messages, 0) as messages,
       started.avg_rating
from days left join started using (day) left join sent using (day)
order by days.day"""

# The conversations started in [first, last]: their number, all their messages, their average rating.
TOTALS = """
select count(*)::int as total,
       coalesce(sum((select count(*) from public.visitor_messages m where m.conversation_id = vc.id)), 0)::int
         as messages,
       avg(vc.rating)::float8 as avg_rating
from public.visitor_conversations vc
where vc.chatbot_id = %(chatbot_id)s
  and vc.started_at >= %(first)s::date::timestamp at time zone 'UTC'
  and vc.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'"""

# One row per conversation (the chosen ids, or all the chatbot's), its messages in order as the text of one
# JSON array (the JSON export writes it as it is; the others parse it).
EXPORT = f"""
select {_CONVERSATION_COLUMNS},
  coalesce((select json_agg(json_build_object(
              'id', m.id, 'role', m.role, 'content', m.content, 'status', m.status, 'model_id', m.model_id,
              'sources', coalesce(m.sources, '[]'::jsonb),
              'created_at', to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
              order by m.sequence_number)
            from public.visitor_messages m where m.conversation_id = vc.id)::text, '[]') as messages_json
from public.visitor_conversations vc left join public.widget_visitors v on v.id = vc.visitor_ref
where vc.chatbot_id = %(chatbot_id)s and (%(ids)s::uuid[] is null or vc.id = any(%(ids)s::uuid[]))
order by vc.started_at desc, vc.id desc"""


def list_conversations(
    conn: Connection,
    chatbot_id: UUID,
    *,
    started_from: datetime | None,
    started_to: datetime | None,
    status: str | None,
    rating: int | None,
    query: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[InboxRow]:
    params = {
        "chatbot_id": chatbot_id,
        "from": started_from,
        "to": started_to,
        "status": status,
        "rating": rating,
        "query": query,
        "after_started": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(InboxRow)) as cur:
        return cur.execute(LIST, params).fetchall()


def get_conversation(conn: Connection, conversation_id: UUID) -> ConversationRow | None:
    with conn.cursor(row_factory=class_row(ConversationRow)) as cur:
        return cur.execute(GET, (conversation_id,)).fetchone()


def messages(conn: Connection, conversation_id: UUID) -> list[MessageRow]:
    with conn.cursor(row_factory=class_row(MessageRow)) as cur:
        return cur.execute(MESSAGES, (conversation_id,)).fetchall()


def update_conversation(conn: Connection, conversation_id: UUID, changes: dict[str, Any]) -> bool:
    params = {
        "id": conversation_id,
        "set_notes": "notes" in changes,
        "notes": changes.get("notes"),
        "set_tags": "tags" in changes,
        "tags": changes.get("tags"),
        "set_status": "status" in changes,
        "status": changes.get("status"),
    }
    return conn.execute(UPDATE, params).fetchone() is not None


def member_workspace_of(conn: Connection, conversation_id: UUID) -> UUID | None:
    row = conn.execute(MEMBER_WORKSPACE, (conversation_id,)).fetchone()
    return None if row is None or row["workspace_id"] is None else UUID(str(row["workspace_id"]))


def delete_conversation(conn: Connection, conversation_id: UUID) -> bool:
    return conn.execute(DELETE, (conversation_id,)).fetchone() is not None


def bulk_delete(conn: Connection, chatbot_id: UUID, ids: Sequence[UUID]) -> int:
    return len(conn.execute(BULK_DELETE, (chatbot_id, list(ids))).fetchall())


def daily(conn: Connection, chatbot_id: UUID, first: date, last: date) -> list[DayRow]:
    with conn.cursor(row_factory=class_row(DayRow)) as cur:
        return cur.execute(DAILY, {"chatbot_id": chatbot_id, "first": first, "last": last}).fetchall()


def totals(conn: Connection, chatbot_id: UUID, first: date, last: date) -> TotalsRow:
    with conn.cursor(row_factory=class_row(TotalsRow)) as cur:
        row = cur.execute(TOTALS, {"chatbot_id": chatbot_id, "first": first, "last": last}).fetchone()
    assert row is not None  # an aggregate always answers
    return row


def export_rows(conn: Connection, chatbot_id: UUID, ids: Sequence[UUID] | None) -> Iterator[dict[str, Any]]:
    """The conversations to export, newest first, through a server-side cursor (the transaction must stay
    open while this is read): at most EXPORT_BATCH rows are held at a time."""
    with conn.cursor(name="inbox_export", row_factory=dict_row) as cur:
        cur.itersize = EXPORT_BATCH
        cur.execute(EXPORT, {"chatbot_id": chatbot_id, "ids": list(ids) if ids is not None else None})
        yield from cur
