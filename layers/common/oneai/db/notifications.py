"""Data layer of the notifications: claims of sent emails, recipients, notification preferences, the
welcome occasion and the monthly usage totals. Everything here runs as the service role (the
notifications function and the unsubscribe link act without a login), except the caller's own
preference merge, which runs under RLS in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from oneai.db.connection import Connection

# --- claims: at most one email per (user, kind, occasion) ------------------------------------------------
CLAIM = """
insert into public.sent_notifications (user_id, kind, occasion)
values (%(user_id)s, %(kind)s, %(occasion)s)
on conflict do nothing"""

# Only a claim still `sending` is released: a `sent` one stays forever.
RELEASE = """
delete from public.sent_notifications
where user_id = %(user_id)s and kind = %(kind)s and occasion = %(occasion)s and status = 'sending'"""

MARK_SENT = """
update public.sent_notifications set status = 'sent', sent_at = now(), provider_message_id = %(message_id)s
where user_id = %(user_id)s and kind = %(kind)s and occasion = %(occasion)s"""


def claim(conn: Connection, user_id: UUID, kind: str, occasion: str) -> bool:
    """True when this caller now owns the occasion (nobody sent or is sending it)."""
    return conn.execute(CLAIM, {"user_id": user_id, "kind": kind, "occasion": occasion}).rowcount == 1


def release(conn: Connection, user_id: UUID, kind: str, occasion: str) -> None:
    conn.execute(RELEASE, {"user_id": user_id, "kind": kind, "occasion": occasion})


def mark_sent(conn: Connection, user_id: UUID, kind: str, occasion: str, message_id: str) -> None:
    conn.execute(MARK_SENT, {"user_id": user_id, "kind": kind, "occasion": occasion, "message_id": message_id})


# --- recipients ------------------------------------------------------------------------------------------
RECIPIENT = "select id, email, name, preferences from public.users where id = %(user_id)s"


@dataclass(frozen=True, slots=True)
class Recipient:
    id: UUID
    email: str | None
    name: str | None
    preferences: dict[str, Any]


def recipient(conn: Connection, user_id: UUID) -> Recipient | None:
    with conn.cursor(row_factory=class_row(Recipient)) as cur:
        return cur.execute(RECIPIENT, {"user_id": user_id}).fetchone()


# --- notification preferences ----------------------------------------------------------------------------
# `preferences.notifications` merged key by key inside the statement (two concurrent changes of different
# keys both land); `remove` keys go back to their default.
MERGE_NOTIFICATION_PREFERENCES = """
update public.users set preferences = jsonb_set(
  preferences,
  '{notifications}',
  (coalesce(preferences -> 'notifications', '{}'::jsonb) || %(changes)s) - %(remove)s::text[]
)
where id = %(user_id)s
returning id"""


def merge_notification_preferences(
    conn: Connection, user_id: UUID | None, changes: dict[str, bool], remove: Sequence[str] = ()
) -> bool:
    """Merge into `user_id`'s switches (None: the caller's, under RLS); False when there is no such user."""
    params = {"user_id": user_id, "changes": Jsonb(changes), "remove": list(remove)}
    statement = MERGE_NOTIFICATION_PREFERENCES
    if user_id is None:
        statement = statement.replace("where id = %(user_id)s", "where id = (select auth.uid())")
    return conn.execute(statement, params).fetchone() is not None


# --- the welcome occasion --------------------------------------------------------------------------------
MARK_WELCOME_ANNOUNCED = """
update public.users set welcome_announced_at = now()
where id = %(user_id)s and welcome_announced_at is null"""


def mark_welcome_announced(conn: Connection, user_id: UUID) -> bool:
    return conn.execute(MARK_WELCOME_ANNOUNCED, {"user_id": user_id}).rowcount == 1


# --- monthly usage totals (the usage-summary sweep) -----------------------------------------------------
# One keyset batch: the users after %(after)s (by id) with usage in [start, end), with their totals. Reads
# `idx_usage_records_user_created (user_id, created_at)` in user order, so a batch stops after `limit` users.
USAGE_TOTALS_AFTER = """
select r.user_id,
       count(*)::bigint as messages,
       coalesce(sum(r.prompt_tokens), 0)::bigint as prompt_tokens,
       coalesce(sum(r.completion_tokens), 0)::bigint as completion_tokens,
       coalesce(sum(r.cost), 0) as cost
from public.usage_records r
where r.user_id > %(after)s and r.created_at >= %(start)s and r.created_at < %(end)s
group by r.user_id
order by r.user_id
limit %(limit)s"""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    user_id: UUID
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


def usage_totals_after(
    conn: Connection, *, after: UUID, start: datetime, end: datetime, limit: int
) -> list[UsageTotals]:
    params = {"after": after, "start": start, "end": end, "limit": limit}
    with conn.cursor(row_factory=class_row(UsageTotals)) as cur:
        return cur.execute(USAGE_TOTALS_AFTER, params).fetchall()
