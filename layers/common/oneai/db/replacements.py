"""Data layer of plan changes by replacement (`oneai.billing.replacement`), as the service role.

A replacement is a subscription whose `replaces_subscription_id` names the one it replaces (the old one
keeps running). `replaced_cancel` on the replacement says what the old one is owed once Razorpay has
activated the replacement: 'now' or 'cycle_end' while owed, 'done' once Razorpay has answered. The webhook
writes it on the row it has locked (never on the old row, which another delivery may hold: no deadlock);
the cancel itself is made after the commit, and by the quota-reset sweep until it is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.connection import Connection

# What the old subscription is (read without a lock: the webhook holds the user's row, which every writer
# of a subscription's state takes too).
REPLACED_SUBSCRIPTION = """
select id, tier, status, cancel_at_period_end, provider_subscription_id
from public.subscriptions where id = %(id)s"""

OWE_REPLACED_CANCEL = """
update public.subscriptions set replaced_cancel = %(kind)s
where id = %(id)s and replaced_cancel is null"""

MARK_REPLACED_CANCEL_DONE = """
update public.subscriptions set replaced_cancel = 'done'
where id = %(id)s and replaced_cancel in ('now', 'cycle_end')"""

OWED_CANCELS = """
select n.id as replacement_id, n.user_id, n.replaced_cancel as kind, n.provider_subscription_id as replacement,
       o.id as old_id, o.provider_subscription_id as old_provider_subscription_id, o.status as old_status,
       o.cancel_at_period_end as old_cancel_at_period_end
from public.subscriptions n
join public.subscriptions o on o.id = n.replaces_subscription_id
where n.replaced_cancel in ('now', 'cycle_end')
  and (%(replacement_id)s::uuid is null or n.id = %(replacement_id)s::uuid)
order by n.updated_at
limit %(limit)s"""

# Replacements whose Checkout was never completed within the allowed time, oldest first.
ABANDONED_REPLACEMENTS = """
select id, user_id, provider_subscription_id, created_at
from public.subscriptions
where replaces_subscription_id is not null and status = 'created'
  and created_at <= now() - make_interval(secs => %(seconds)s)
order by created_at
limit %(limit)s"""

# An old subscription in one of these statuses is owed nothing: it has ended already.
ENDED_STATUSES: Final = ("cancelled", "completed", "expired")


@dataclass(frozen=True, slots=True)
class ReplacedSubscription:
    id: UUID
    tier: str
    status: str
    cancel_at_period_end: bool
    provider_subscription_id: str


@dataclass(frozen=True, slots=True)
class OwedCancel:
    replacement_id: UUID
    user_id: UUID
    kind: str
    replacement: str
    old_id: UUID
    old_provider_subscription_id: str
    old_status: str
    old_cancel_at_period_end: bool


@dataclass(frozen=True, slots=True)
class AbandonedReplacement:
    id: UUID
    user_id: UUID
    provider_subscription_id: str
    created_at: datetime


def replaced_subscription(conn: Connection, subscription_id: UUID) -> ReplacedSubscription | None:
    with conn.cursor(row_factory=class_row(ReplacedSubscription)) as cur:
        return cur.execute(REPLACED_SUBSCRIPTION, {"id": subscription_id}).fetchone()


def owe_replaced_cancel(conn: Connection, replacement_id: UUID, kind: str) -> bool:
    """Write what the old subscription is owed; False when it was written before (the first write wins)."""
    return conn.execute(OWE_REPLACED_CANCEL, {"id": replacement_id, "kind": kind}).rowcount == 1


def mark_replaced_cancel_done(conn: Connection, replacement_id: UUID) -> bool:
    return conn.execute(MARK_REPLACED_CANCEL_DONE, {"id": replacement_id}).rowcount == 1


def owed_cancels(conn: Connection, *, limit: int, replacement_id: UUID | None = None) -> list[OwedCancel]:
    with conn.cursor(row_factory=class_row(OwedCancel)) as cur:
        return cur.execute(OWED_CANCELS, {"limit": limit, "replacement_id": replacement_id}).fetchall()


def abandoned_replacements(
    conn: Connection, *, older_than_seconds: float, limit: int
) -> list[AbandonedReplacement]:
    with conn.cursor(row_factory=class_row(AbandonedReplacement)) as cur:
        return cur.execute(ABANDONED_REPLACEMENTS, {"seconds": older_than_seconds, "limit": limit}).fetchall()
