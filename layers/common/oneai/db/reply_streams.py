"""Data layer of resumable replies (`20261122160000_reply_streams.sql`): the reply being generated, its
batches of UI message stream parts, the stop flag, and the fold when it ends. Every statement runs as the
reply's user, under RLS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from oneai.db.connection import Connection

# A generator that has not flushed for this long is gone (crashed, or its container was reclaimed).
STALE_AFTER_SECONDS = 30

# One round trip a flush: the row is created by the first one (the reply's first batch), every flush
# bumps the heartbeat, appends its batch when it has one, and reads the stop flag.
FLUSH = """
with reply as (
  insert into public.reply_streams (id, user_id, conversation_id, last_seq)
  values (%(id)s, (select auth.uid()), %(conversation_id)s, %(seq)s)
  on conflict (id) do update set heartbeat_at = now(), flushes = reply_streams.flushes + 1,
    last_seq = greatest(reply_streams.last_seq, excluded.last_seq)
  returning stop_requested_at
), batch as (
  insert into public.reply_stream_parts (reply_id, seq, user_id, parts)
  select %(id)s, %(seq)s, (select auth.uid()), %(parts)s::jsonb where %(parts)s::jsonb is not null
)
select stop_requested_at is not null as stop from reply"""

# The end: the reply's state and its folded parts; the batches go. Finished replies of the conversation
# older than a minute go too (no reader can still be following them).
FOLD = """
with reply as (
  insert into public.reply_streams (id, user_id, conversation_id, status, folded, finished_at, flushes)
  values (%(id)s, (select auth.uid()), %(conversation_id)s, %(status)s, %(folded)s, now(), 0)
  on conflict (id) do update set status = excluded.status, folded = excluded.folded, finished_at = now(),
    heartbeat_at = now()
  returning id
), parts as (
  delete from public.reply_stream_parts where reply_id = %(id)s
), old as (
  delete from public.reply_streams
  where conversation_id = %(conversation_id)s and id <> %(id)s and status <> 'streaming'
    and finished_at < now() - interval '1 minute'
)
select id from reply"""

# The reply being generated in a conversation (the latest, if two tabs sent at once).
ACTIVE_REPLY = f"""
select id from public.reply_streams
where conversation_id = %s and status = 'streaming'
  and heartbeat_at > now() - interval '{STALE_AFTER_SECONDS} seconds'
order by started_at desc
limit 1"""

# What a follower needs, in one snapshot: the state, and the batches after the ones it has.
POLL = f"""
select r.status, r.folded, r.heartbeat_at > now() - interval '{STALE_AFTER_SECONDS} seconds' as alive,
  coalesce(
    (select jsonb_agg(jsonb_build_array(p.seq, p.parts) order by p.seq)
     from public.reply_stream_parts p where p.reply_id = r.id and p.seq > %(after)s),
    '[]'::jsonb
  ) as batches
from public.reply_streams r
where r.id = %(id)s"""

REQUEST_STOP = """
update public.reply_streams set stop_requested_at = coalesce(stop_requested_at, now())
where conversation_id = %s and status = 'streaming'
returning id"""


@dataclass(frozen=True)
class ReplyPoll:
    status: str
    folded: list[dict[str, Any]] | None
    alive: bool
    batches: list[tuple[int, list[dict[str, Any]]]]


def flush(conn: Connection, *, reply_id: UUID, conversation_id: UUID, seq: int, parts_json: str | None) -> bool:
    """Write one batch (`parts_json`: a JSON array, or None for a heartbeat); True when a stop was asked."""
    row = conn.execute(
        FLUSH, {"id": reply_id, "conversation_id": conversation_id, "seq": seq, "parts": parts_json}
    ).fetchone()
    return bool(row and row["stop"])


def fold(
    conn: Connection, *, reply_id: UUID, conversation_id: UUID, status: str, folded: list[dict[str, Any]]
) -> None:
    conn.execute(
        FOLD, {"id": reply_id, "conversation_id": conversation_id, "status": status, "folded": Jsonb(folded)}
    )


def active_reply(conn: Connection, conversation_id: UUID) -> UUID | None:
    row = conn.execute(ACTIVE_REPLY, (conversation_id,)).fetchone()
    return None if row is None else UUID(str(row["id"]))


def poll(conn: Connection, reply_id: UUID, after_seq: int) -> ReplyPoll | None:
    row = conn.execute(POLL, {"id": reply_id, "after": after_seq}).fetchone()
    if row is None:
        return None
    batches = [(int(seq), list(parts)) for seq, parts in row["batches"]]
    return ReplyPoll(status=row["status"], folded=row["folded"], alive=bool(row["alive"]), batches=batches)


def request_stop(conn: Connection, conversation_id: UUID) -> int:
    """Flag every reply being generated in the conversation; how many there were."""
    return len(conn.execute(REQUEST_STOP, (conversation_id,)).fetchall())
