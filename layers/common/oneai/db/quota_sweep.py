"""Data layer of the scheduled sweeps: due quota resets and ended grace periods, as the service role.

Every function runs inside a `Database.service_transaction()` (role `service_role`, which bypasses RLS on
purpose: a sweep acts on every user's rows). Each batch is one short transaction of its own; the caller
decides how many batches to run.

A reset here is the same reset that `oneai_private.reserve_quota` applies by itself (used 0, warning
level 0, the window starting now, the next reset from `public.next_quota_reset`, the one place reset
times are computed), so a row is reset by whichever comes first and never twice:
- `FOR UPDATE SKIP LOCKED` gives concurrent sweeps disjoint rows and never waits on a row a reserve holds;
- the UPDATE checks `next_reset_at <= now()` again on the locked row, so a row that a reserve reset
  meanwhile (committed after this statement's snapshot) is left alone.
Both queries use `idx_usage_quotas_due (reset_frequency, next_reset_at)`: the batch reads the index in
order and stops after `limit` rows, the count reads the due range only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.connection import Connection
from oneai.quota.tiers import ResetFrequency

# One batch: lock up to %(limit)s due rows of one frequency, oldest due first, skipping rows that another
# sweep or a reserve holds, and reset them. Returns nothing; the row count is the cursor's.
RESET_DUE_QUOTAS = """
with due as (
  select q.id
  from public.usage_quotas q
  where q.reset_frequency = %(frequency)s and q.next_reset_at <= now()
  order by q.next_reset_at
  limit %(limit)s
  for update skip locked
)
update public.usage_quotas as q set
  used_count = 0,
  warning_level = 0,
  last_reset_at = now(),
  next_reset_at = public.next_quota_reset(q.reset_frequency, now())
from due
where q.id = due.id
  and q.next_reset_at <= now()"""

COUNT_DUE_QUOTAS = """
select count(*) as due
from public.usage_quotas q
where q.reset_frequency = %(frequency)s and q.next_reset_at <= now()"""

# Pending subscriptions whose grace period has run out, oldest first, each locked together with its
# user's row (the tier change writes it), skipping any that another sweep, a webhook or the user holds:
# a sweep never waits, so two sweeps cannot deadlock over two subscriptions of the same users.
# `other_active`: the user has another active subscription, which keeps the tier.
LOCK_EXPIRED_GRACE_PERIODS = """
select s.id, s.user_id, s.tier, s.grace_until,
       exists (
         select 1 from public.subscriptions o
         where o.user_id = s.user_id and o.id <> s.id and o.status = 'active'
       ) as other_active
from public.subscriptions s
join public.users u on u.id = s.user_id
where s.status = 'pending' and s.grace_until <= now()
order by s.grace_until
limit %(limit)s
for update of s, u skip locked"""

# Checked again on the locked row: a webhook may have settled the subscription meanwhile.
HALT_SUBSCRIPTION = """
update public.subscriptions set status = 'halted', grace_until = null
where id = %(id)s and status = 'pending' and grace_until <= now()"""


@dataclass(frozen=True, slots=True)
class ExpiredGracePeriod:
    """A pending subscription whose grace period ended, locked for this transaction."""

    id: UUID
    user_id: UUID
    tier: str
    grace_until: datetime
    other_active: bool


def reset_due_quotas(conn: Connection, frequency: ResetFrequency, limit: int) -> int:
    """Reset up to `limit` due rows of `frequency`; returns how many were reset."""
    cursor = conn.execute(RESET_DUE_QUOTAS, {"frequency": frequency, "limit": limit})
    return max(cursor.rowcount, 0)


def count_due_quotas(conn: Connection, frequency: ResetFrequency) -> int:
    row = conn.execute(COUNT_DUE_QUOTAS, {"frequency": frequency}).fetchone()
    return int(row["due"]) if row else 0


def lock_expired_grace_periods(conn: Connection, limit: int) -> list[ExpiredGracePeriod]:
    with conn.cursor(row_factory=class_row(ExpiredGracePeriod)) as cur:
        return cur.execute(LOCK_EXPIRED_GRACE_PERIODS, {"limit": limit}).fetchall()


def halt_subscription(conn: Connection, subscription_id: UUID) -> bool:
    """Mark a pending subscription whose grace ended as halted; False when it no longer is one."""
    return conn.execute(HALT_SUBSCRIPTION, {"id": subscription_id}).rowcount == 1
