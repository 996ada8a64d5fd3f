"""Data layer of the billing API: the caller's subscriptions and tier history.

Two kinds of transaction, on purpose:
- reads of the caller's own subscriptions and history run in `Database.user_transaction(principal)`,
  as `authenticated`: Row Level Security (`subscriptions_select_own`, `subscription_history_select_own`)
  narrows them to the caller's rows, and the statements say `auth.uid()` as well;
- writes run in `Database.service_transaction()`, as `service_role`, because `authenticated` may only
  SELECT subscriptions (billing state is written by the service alone, see the initial migration). Every
  write still names the user (`user_id = %(user_id)s`), so it can only touch that user's rows.

Statuses written here are only the ones Razorpay answered; the tier a user has is changed by the webhooks
(`oneai.billing.tier_change.change_tier`), never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from oneai.db.connection import Connection

# A subscription that is, or may become, paid: it blocks a second one.
LIVE_STATUSES: Final = ("created", "authenticated", "active", "pending")
# The ones `verify` checks Checkout's signature against: awaiting or just through Checkout, and also
# `active`/`pending`, because Razorpay's webhooks often activate the subscription before the browser's
# verify arrives.
CHECKOUT_STATUSES: Final = LIVE_STATUSES
# A replacement (a plan change by a new subscription) in these statuses awaits Razorpay's activation: while
# the subscription it replaces is live, that one is still the one in force. Once the replaced one has ended
# (cancelled, halted, ... at Razorpay), the replacement has nothing left to replace: it is the subscription
# in force itself, which the caller can pay, change or cancel like any other.
AWAITING_STATUSES: Final = ("created", "authenticated")
# A subscription Razorpay stopped charging but may revive: a halted one when the customer renews its
# payment method, a paused one when it is resumed. It grants nothing meanwhile.
DORMANT_STATUSES: Final = ("halted", "paused")
# Razorpay has no invoice for a subscription that was never authenticated.
NO_INVOICE_STATUSES: Final = ("created", "expired")

SUBSCRIPTION_COLUMNS = (
    "id, user_id, plan_id, tier, status, provider_subscription_id, current_period_start, current_period_end,"
    " paid_until, grace_until, cancel_at_period_end, canceled_at, created_at, updated_at, metadata,"
    " replaced_cancel"
)
# A replacement that awaits activation while the subscription it replaces is live (statement parameters
# `awaiting` and `statuses`). Inside the subquery, `public.subscriptions` names the outer row: the inner
# one is only `replaced`.
AWAITING_REPLACEMENT = """(replaces_subscription_id is not null and status = any(%(awaiting)s::text[])
  and exists (select 1 from public.subscriptions replaced
              where replaced.id = public.subscriptions.replaces_subscription_id
                and replaced.status = any(%(statuses)s::text[])))"""

# --- reads, as the caller (user transaction, under RLS) --------------------------------------------------
CALLER_LATEST_SUBSCRIPTION = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = (select auth.uid()) and status = any(%(statuses)s::text[])
order by created_at desc, id desc
limit 1"""

# The subscription in force: the newest live one that is not a replacement awaiting activation.
CALLER_SUBSCRIPTION_IN_FORCE = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = (select auth.uid()) and status = any(%(statuses)s::text[])
  and not {AWAITING_REPLACEMENT}
order by created_at desc, id desc
limit 1"""

CALLER_PENDING_REPLACEMENT = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = (select auth.uid()) and {AWAITING_REPLACEMENT}
order by created_at desc, id desc
limit 1"""

CALLER_SUBSCRIPTIONS_IN = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = (select auth.uid()) and status = any(%(statuses)s::text[])
order by created_at desc, id desc"""

CALLER_INVOICED_SUBSCRIPTIONS = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = (select auth.uid()) and status <> all(%(excluded)s::text[])
order by created_at desc, id desc
limit %(limit)s"""

CALLER_HISTORY = """
select id, subscription_id, old_tier, new_tier, change_reason, changed_at
from public.subscription_history
where user_id = (select auth.uid())
order by changed_at desc, id desc
limit %(limit)s"""

# --- writes, as the service (service transaction) --------------------------------------------------------
# The users row is the lock that serialises two creates of the same user (a double click, two tabs):
# the second waits here, then sees the first one's subscription.
LOCK_USER = "select id from public.users where id = %(user_id)s for update"

LIVE_SUBSCRIPTION_OF = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = %(user_id)s
  and status = any(%(statuses)s::text[])
  and (%(alongside)s::uuid is null or id <> %(alongside)s::uuid)
order by created_at desc, id desc
limit 1"""

# A webhook may have stored ("adopted") the subscription first: then its row, with its status, is kept.
INSERT_SUBSCRIPTION = f"""
insert into public.subscriptions
  (user_id, plan_id, tier, status, payment_provider, provider_subscription_id, metadata, replaces_subscription_id)
values (%(user_id)s, %(plan_id)s, %(tier)s, 'created', 'razorpay', %(provider_subscription_id)s, %(metadata)s,
        %(replaces)s)
on conflict on constraint unique_provider_subscription do update
  set metadata = excluded.metadata || public.subscriptions.metadata,
      replaces_subscription_id = coalesce(public.subscriptions.replaces_subscription_id,
                                          excluded.replaces_subscription_id)
  where public.subscriptions.user_id = excluded.user_id
returning {SUBSCRIPTION_COLUMNS}"""

MERGE_METADATA = f"""
update public.subscriptions set metadata = metadata || %(metadata)s
where id = %(id)s and user_id = %(user_id)s
returning {SUBSCRIPTION_COLUMNS}"""

# What a cancel answered: `status` (null keeps ours) and whether it ends with the cycle.
RECORD_CANCELLATION = f"""
update public.subscriptions set
  status = coalesce(%(status)s, status),
  cancel_at_period_end = %(at_period_end)s,
  canceled_at = coalesce(%(canceled_at)s, canceled_at),
  metadata = metadata || %(metadata)s
where id = %(id)s and user_id = %(user_id)s
returning {SUBSCRIPTION_COLUMNS}"""

# What an edit answered: the plan now in force (null keeps ours) and a scheduled change (or none).
RECORD_PLAN_CHANGE = f"""
update public.subscriptions set
  plan_id = coalesce(%(plan_id)s, plan_id),
  tier = coalesce(%(tier)s, tier),
  metadata = case when %(scheduled_change)s::jsonb is null
    then metadata - 'scheduled_change'
    else metadata || jsonb_build_object('scheduled_change', %(scheduled_change)s::jsonb) end
where id = %(id)s and user_id = %(user_id)s
returning {SUBSCRIPTION_COLUMNS}"""


class SubscriptionRow(BaseModel):
    id: UUID
    user_id: UUID
    plan_id: str
    tier: str
    status: str
    provider_subscription_id: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    paid_until: datetime | None
    grace_until: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    # On a replacement: what the subscription it replaces is owed ('now', 'cycle_end', 'done'), once
    # Razorpay has activated it far enough (`oneai.billing.replacement`); None before.
    replaced_cancel: str | None = None


class HistoryRow(BaseModel):
    id: UUID
    subscription_id: UUID | None
    old_tier: str | None
    new_tier: str
    change_reason: str
    changed_at: datetime


# --- reads ---------------------------------------------------------------------------------------------


def caller_latest_subscription(
    conn: Connection, statuses: Sequence[str] = LIVE_STATUSES
) -> SubscriptionRow | None:
    """The caller's newest subscription in one of `statuses` (user transaction)."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(CALLER_LATEST_SUBSCRIPTION, {"statuses": list(statuses)}).fetchone()


def caller_subscription_in_force(conn: Connection) -> SubscriptionRow | None:
    """The caller's subscription in force: the newest live one, not counting a replacement that awaits
    Razorpay's activation (user transaction)."""
    params = {"statuses": list(LIVE_STATUSES), "awaiting": list(AWAITING_STATUSES)}
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(CALLER_SUBSCRIPTION_IN_FORCE, params).fetchone()


def caller_pending_replacement(conn: Connection) -> SubscriptionRow | None:
    """The caller's newest replacement that awaits Razorpay's activation while the subscription it
    replaces is live (user transaction)."""
    params = {"statuses": list(LIVE_STATUSES), "awaiting": list(AWAITING_STATUSES)}
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(CALLER_PENDING_REPLACEMENT, params).fetchone()


def caller_subscriptions_in(conn: Connection, statuses: Sequence[str]) -> list[SubscriptionRow]:
    """The caller's subscriptions in one of `statuses`, newest first (user transaction)."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(CALLER_SUBSCRIPTIONS_IN, {"statuses": list(statuses)}).fetchall()


def caller_invoiced_subscriptions(conn: Connection, limit: int) -> list[SubscriptionRow]:
    """The caller's newest `limit` subscriptions that can have invoices (user transaction)."""
    params = {"excluded": list(NO_INVOICE_STATUSES), "limit": limit}
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(CALLER_INVOICED_SUBSCRIPTIONS, params).fetchall()


def caller_history(conn: Connection, limit: int) -> list[HistoryRow]:
    """The caller's tier changes, newest first (user transaction)."""
    with conn.cursor(row_factory=class_row(HistoryRow)) as cur:
        return cur.execute(CALLER_HISTORY, {"limit": limit}).fetchall()


# --- writes (service transaction) ---------------------------------------------------------------------


def lock_user(conn: Connection, user_id: UUID) -> bool:
    """Lock the users row until the transaction ends; False for an unknown user."""
    return conn.execute(LOCK_USER, {"user_id": user_id}).fetchone() is not None


def live_subscription_of(
    conn: Connection, user_id: UUID, *, alongside: UUID | None = None
) -> SubscriptionRow | None:
    """The user's newest live subscription other than `alongside` (the one a tier change replaces)."""
    params = {"user_id": user_id, "statuses": list(LIVE_STATUSES), "alongside": alongside}
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(LIVE_SUBSCRIPTION_OF, params).fetchone()


def insert_created_subscription(
    conn: Connection,
    *,
    user_id: UUID,
    plan_id: str,
    tier: str,
    provider_subscription_id: str,
    metadata: dict[str, Any],
    replaces: UUID | None = None,
) -> SubscriptionRow:
    params = {
        "replaces": replaces,
        "user_id": user_id,
        "plan_id": plan_id,
        "tier": tier,
        "provider_subscription_id": provider_subscription_id,
        "metadata": Jsonb(metadata),
    }
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        row = cur.execute(INSERT_SUBSCRIPTION, params).fetchone()
    if row is None:  # only when another user's row holds this Razorpay id, which cannot happen
        raise RuntimeError("the subscription was not recorded")
    return row


def merge_metadata(
    conn: Connection, *, subscription_id: UUID, user_id: UUID, metadata: dict[str, Any]
) -> SubscriptionRow | None:
    params = {"id": subscription_id, "user_id": user_id, "metadata": Jsonb(metadata)}
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(MERGE_METADATA, params).fetchone()


def record_cancellation(
    conn: Connection,
    *,
    subscription_id: UUID,
    user_id: UUID,
    status: str | None,
    at_period_end: bool,
    canceled_at: datetime | None,
    metadata: dict[str, Any],
) -> SubscriptionRow | None:
    params = {
        "id": subscription_id,
        "user_id": user_id,
        "status": status,
        "at_period_end": at_period_end,
        "canceled_at": canceled_at,
        "metadata": Jsonb(metadata),
    }
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(RECORD_CANCELLATION, params).fetchone()


def record_plan_change(
    conn: Connection,
    *,
    subscription_id: UUID,
    user_id: UUID,
    plan_id: str | None,
    tier: str | None,
    scheduled_change: dict[str, Any] | None,
) -> SubscriptionRow | None:
    params = {
        "id": subscription_id,
        "user_id": user_id,
        "plan_id": plan_id,
        "tier": tier,
        "scheduled_change": Jsonb(scheduled_change) if scheduled_change is not None else None,
    }
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(RECORD_PLAN_CHANGE, params).fetchone()
