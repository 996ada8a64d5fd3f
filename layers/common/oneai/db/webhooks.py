"""Data layer of the Razorpay webhooks and of the period-end sweep, as the service role.

Every function runs inside a `Database.service_transaction()`: webhooks and sweeps act on any user's
subscription, on purpose. The webhook's transaction is: record the event id (the primary key makes a
repeated or concurrent delivery of the same event wait for the first and then find it recorded), lock
the subscription with its user's row, write the new state, change the tier.

What "grants its tier" means is written once, in SQL, as `ENTITLES` (and in Python as
`oneai.billing.webhooks.entitles`; a test keeps the two equal): `active`; `pending` until `grace_until`;
`cancelled` at the end of the period (`cancel_at_period_end`) until `paid_until`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from oneai.db.connection import Connection

PROVIDER: Final = "razorpay"


def entitles_sql(alias: str) -> str:
    """The subscription `alias` grants its tier now (the SQL twin of `webhooks.entitles`)."""
    return (
        f"coalesce({alias}.status = 'active'"
        f" or ({alias}.status = 'pending' and {alias}.grace_until > now())"
        f" or ({alias}.status = 'cancelled' and {alias}.cancel_at_period_end and {alias}.paid_until > now()),"
        " false)"
    )


ENTITLES: Final = entitles_sql("s")

# The first thing a delivery does. No row back: the event was recorded before (or is being recorded by a
# concurrent delivery, which this statement waits for): a duplicate.
RECORD_EVENT = """
insert into public.processed_webhook_events (event_id, provider, event_type, provider_subscription_id)
values (%(event_id)s, %(provider)s, %(event_type)s, %(provider_subscription_id)s)
on conflict (event_id) do nothing
returning event_id"""

SET_EVENT_SUBSCRIPTION = """
update public.processed_webhook_events set provider_subscription_id = %(provider_subscription_id)s
where event_id = %(event_id)s"""

# The subscription and its user's row, locked for the rest of the transaction. A concurrent delivery for
# the same subscription waits here until the first commits.
LOCK_SUBSCRIPTION = """
select s.id
from public.subscriptions s
join public.users u on u.id = s.user_id
where s.payment_provider = %(provider)s and s.provider_subscription_id = %(provider_subscription_id)s
for update of s, u"""

# Then, in a statement of its own (under READ COMMITTED a new snapshot, so it sees what a delivery it
# waited for committed), what the rules need: the row, its user's tier, the tiers the user's other
# subscriptions grant now, and whether this subscription ever changed the user's tier (its first grant is
# a `new_subscription`, later ones `upgrade`).
READ_LOCKED_SUBSCRIPTION = f"""
select s.id, s.user_id, s.plan_id, s.tier, s.status, s.current_period_start, s.current_period_end,
       s.paid_until, s.grace_until, s.last_event_at, s.last_event_rank, s.cancel_at_period_end,
       s.canceled_at, s.access_ended_at, s.provider_customer_id, s.replaces_subscription_id, s.replaced_cancel,
       u.subscription_tier as user_tier, u.subscription_status as user_status,
       array(
         select o.tier from public.subscriptions o
         where o.user_id = s.user_id and o.id <> s.id and {entitles_sql("o")}
       ) as other_tiers,
       exists (
         select 1 from public.subscription_history h where h.user_id = s.user_id and h.subscription_id = s.id
       ) as has_history,
       now() as now
from public.subscriptions s
join public.users u on u.id = s.user_id
where s.id = %(id)s"""

# A subscription we have not stored yet whose notes name one of our users. Nothing when the user does
# not exist; nothing when a concurrent delivery adopted it first (it waits for that one to commit).
ADOPT_SUBSCRIPTION = """
insert into public.subscriptions
  (user_id, plan_id, tier, status, payment_provider, provider_subscription_id, provider_customer_id, metadata,
   replaces_subscription_id)
select u.id, %(plan_id)s, %(tier)s, 'created', %(provider)s, %(provider_subscription_id)s, %(customer_id)s,
       %(metadata)s,
       (select r.id from public.subscriptions r
        where r.user_id = u.id and r.payment_provider = %(provider)s
          and r.provider_subscription_id = %(replaces)s)
from public.users u
where u.id = %(user_id)s
on conflict (payment_provider, provider_subscription_id) do nothing"""

SAVE_SUBSCRIPTION = """
update public.subscriptions set
  status = %(status)s,
  plan_id = %(plan_id)s,
  tier = %(tier)s,
  current_period_start = %(current_period_start)s,
  current_period_end = %(current_period_end)s,
  paid_until = %(paid_until)s,
  grace_until = %(grace_until)s,
  last_event_at = %(last_event_at)s,
  last_event_rank = %(last_event_rank)s,
  canceled_at = %(canceled_at)s,
  access_ended_at = %(access_ended_at)s,
  provider_customer_id = %(provider_customer_id)s
where id = %(id)s"""

SET_USER_STATUS = """
update public.users set subscription_status = %(status)s
where id = %(user_id)s and subscription_status <> %(status)s"""

USER_EXISTS = "select exists (select 1 from public.users where id = %(user_id)s) as found"

# The subscription a payment belongs to: by its subscription id when the payment names one, else the
# newest subscription of its Razorpay customer.
FIND_SUBSCRIPTION_OF_PAYMENT = """
select s.id, s.user_id, s.provider_subscription_id
from public.subscriptions s
where s.payment_provider = %(provider)s
  and (s.provider_subscription_id = %(provider_subscription_id)s or s.provider_customer_id = %(customer_id)s)
order by s.provider_subscription_id = %(provider_subscription_id)s desc nulls last, s.created_at desc
limit 1"""

# ---------------------------------------------------------------- the period-end sweep

# Subscriptions cancelled at the end of the paid period whose period has ended and whose access was not
# ended yet, oldest first, each locked with its user's row, skipping rows a webhook or another sweep
# holds (a sweep never waits, so two cannot deadlock).
LOCK_FINISHED_CANCELLATIONS = f"""
select s.id, s.user_id, s.tier, s.paid_until, u.subscription_tier as user_tier,
       array(
         select o.tier from public.subscriptions o
         where o.user_id = s.user_id and o.id <> s.id and {entitles_sql("o")}
       ) as other_tiers
from public.subscriptions s
join public.users u on u.id = s.user_id
where s.status = 'cancelled' and s.cancel_at_period_end and s.access_ended_at is null and s.paid_until <= now()
order by s.paid_until
limit %(limit)s
for update of s, u skip locked"""

# Checked again on the locked row.
END_ACCESS = """
update public.subscriptions set access_ended_at = now()
where id = %(id)s and status = 'cancelled' and cancel_at_period_end and access_ended_at is null
  and paid_until <= now()"""


@dataclass(frozen=True, slots=True)
class LockedSubscription:
    """A subscription row and its user's tier, locked for this transaction."""

    id: UUID
    user_id: UUID
    plan_id: str
    tier: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    paid_until: datetime | None
    grace_until: datetime | None
    last_event_at: datetime | None
    last_event_rank: int | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    access_ended_at: datetime | None
    provider_customer_id: str | None
    replaces_subscription_id: UUID | None
    replaced_cancel: str | None
    user_tier: str
    user_status: str
    other_tiers: list[str]
    has_history: bool
    now: datetime


@dataclass(frozen=True, slots=True)
class PaymentSubscription:
    id: UUID
    user_id: UUID
    provider_subscription_id: str


@dataclass(frozen=True, slots=True)
class FinishedCancellation:
    id: UUID
    user_id: UUID
    tier: str
    paid_until: datetime
    user_tier: str
    other_tiers: list[str]


def record_event(
    conn: Connection, *, event_id: str, event_type: str, provider_subscription_id: str | None
) -> bool:
    """True when this delivery is the first of `event_id`; False for a duplicate."""
    row = conn.execute(
        RECORD_EVENT,
        {
            "event_id": event_id,
            "provider": PROVIDER,
            "event_type": event_type,
            "provider_subscription_id": provider_subscription_id,
        },
    ).fetchone()
    return row is not None


def set_event_subscription(conn: Connection, event_id: str, provider_subscription_id: str) -> None:
    conn.execute(
        SET_EVENT_SUBSCRIPTION, {"event_id": event_id, "provider_subscription_id": provider_subscription_id}
    )


def lock_subscription(conn: Connection, provider_subscription_id: str) -> LockedSubscription | None:
    """Lock the subscription with its user's row and read it; None when it is not stored."""
    locked = conn.execute(
        LOCK_SUBSCRIPTION, {"provider": PROVIDER, "provider_subscription_id": provider_subscription_id}
    ).fetchone()
    if locked is None:
        return None
    with conn.cursor(row_factory=class_row(LockedSubscription)) as cur:
        return cur.execute(READ_LOCKED_SUBSCRIPTION, {"id": locked["id"]}).fetchone()


def adopt_subscription(
    conn: Connection,
    *,
    user_id: UUID,
    provider_subscription_id: str,
    plan_id: str,
    tier: str,
    customer_id: str | None,
    metadata: Mapping[str, Any],
    replaces: str | None = None,
) -> bool:
    """Insert a subscription for `user_id` (linked to the one it `replaces`, a Razorpay id of the same user,
    when its notes say so); False when the user does not exist or it is stored already."""
    cursor = conn.execute(
        ADOPT_SUBSCRIPTION,
        {
            "user_id": user_id,
            "provider": PROVIDER,
            "provider_subscription_id": provider_subscription_id,
            "plan_id": plan_id,
            "tier": tier,
            "customer_id": customer_id,
            "metadata": Jsonb(dict(metadata)),
            "replaces": replaces,
        },
    )
    return cursor.rowcount == 1


def save_subscription(conn: Connection, subscription_id: UUID, values: Mapping[str, Any]) -> None:
    conn.execute(SAVE_SUBSCRIPTION, {**values, "id": subscription_id})


def set_user_status(conn: Connection, user_id: UUID, status: str) -> bool:
    return conn.execute(SET_USER_STATUS, {"user_id": user_id, "status": status}).rowcount == 1


def user_exists(conn: Connection, user_id: UUID) -> bool:
    row = conn.execute(USER_EXISTS, {"user_id": user_id}).fetchone()
    return bool(row and row["found"])


def find_subscription_of_payment(
    conn: Connection, *, provider_subscription_id: str | None, customer_id: str | None
) -> PaymentSubscription | None:
    if provider_subscription_id is None and customer_id is None:
        return None
    with conn.cursor(row_factory=class_row(PaymentSubscription)) as cur:
        return cur.execute(
            FIND_SUBSCRIPTION_OF_PAYMENT,
            {
                "provider": PROVIDER,
                "provider_subscription_id": provider_subscription_id,
                "customer_id": customer_id,
            },
        ).fetchone()


def lock_finished_cancellations(conn: Connection, limit: int) -> list[FinishedCancellation]:
    with conn.cursor(row_factory=class_row(FinishedCancellation)) as cur:
        return cur.execute(LOCK_FINISHED_CANCELLATIONS, {"limit": limit}).fetchall()


def end_access(conn: Connection, subscription_id: UUID) -> bool:
    """Mark the cancelled subscription's access as ended; False when it no longer qualifies."""
    return conn.execute(END_ACCESS, {"id": subscription_id}).rowcount == 1


# ---------------------------------------------------------------- notifications (issue 15)

SUBSCRIPTION_GRACE_UNTIL = "select grace_until from public.subscriptions where id = %(id)s"


def grace_until_of(conn: Connection, subscription_id: UUID) -> datetime | None:
    """The end of the subscription's current grace period (None when it is not in one)."""
    row = conn.execute(SUBSCRIPTION_GRACE_UNTIL, {"id": subscription_id}).fetchone()
    return row["grace_until"] if row else None
