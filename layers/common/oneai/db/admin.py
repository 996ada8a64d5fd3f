"""Data layer of the admin function: named SQL over every user's rows, typed rows.

Every function runs inside a service transaction opened by `oneai.admin.audit.admin_transaction` (role
`service_role`, which bypasses RLS on purpose: an admin reads and changes other people's rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from oneai.db.connection import Connection

# ------------------------------------------------------------------------------------------ users

_USER_COLUMNS = """
  u.id, u.email, u.name, u.subscription_tier as tier, u.subscription_status, u.suspended_at,
  u.suspension_reason, u.created_at,
  (select max(r.created_at) from public.usage_records r where r.user_id = u.id) as last_active_at,
  recent.messages_30d, recent.cost_30d"""
# Reads the user's usage records through idx_usage_records_user_created, for the rows on the page only.
_RECENT_USAGE = """
cross join lateral (
  select count(*) as messages_30d, coalesce(sum(r.cost), 0) as cost_30d,
         coalesce(sum(r.total_tokens), 0) as tokens_30d
  from public.usage_records r
  where r.user_id = u.id and r.created_at >= now() - interval '30 days'
) recent"""

LIST_USERS = f"""
select {_USER_COLUMNS}, recent.tokens_30d
from public.users u
{_RECENT_USAGE}
where (%(q)s::text is null
       or u.email ilike %(pattern)s escape '\\' or u.name ilike %(pattern)s escape '\\'
       or u.id::text = lower(%(q)s))
  and (%(tier)s::text is null or u.subscription_tier = %(tier)s)
  and (%(status)s::text is null
       or (%(status)s = 'suspended' and u.suspended_at is not null)
       or u.subscription_status = %(status)s)
  and (%(after_created)s::timestamptz is null or (u.created_at, u.id) < (%(after_created)s, %(after_id)s))
order by u.created_at desc, u.id desc
limit %(limit)s"""

GET_USER = f"""
select {_USER_COLUMNS}, recent.tokens_30d
from public.users u
{_RECENT_USAGE}
where u.id = %(user_id)s"""

LOCK_USER = """
select id, suspended_at, suspension_reason, subscription_tier from public.users where id = %(user_id)s for update"""

SET_SUSPENSION = """
update public.users set suspended_at = %(suspended_at)s, suspension_reason = %(reason)s
where id = %(user_id)s
returning suspended_at, suspension_reason"""

ACTOR_STATE = "select suspended_at from public.users where id = %(user_id)s"

# ------------------------------------------------------------------------------------------ quotas

USER_QUOTAS = """
select q.quota_key, q.used_count, q.quota_limit, q.tier_limit, q.next_reset_at, q.reset_frequency,
       o.quota_limit as override_limit, o.reason as override_reason, o.expires_at as override_expires_at,
       o.created_by as override_created_by, o.created_at as override_created_at
from oneai_private.quotas_of(%(user_id)s) q
left join public.quota_overrides o
  on o.user_id = %(user_id)s and o.quota_key = q.quota_key and q.overridden"""

GET_OVERRIDE = """
select quota_limit, reason, expires_at, created_by, created_at from public.quota_overrides
where user_id = %(user_id)s and quota_key = %(quota_key)s
for update"""

UPSERT_OVERRIDE = """
insert into public.quota_overrides (user_id, quota_key, quota_limit, reason, expires_at, created_by)
values (%(user_id)s, %(quota_key)s, %(limit)s, %(reason)s, %(expires_at)s, %(actor_id)s)
on conflict (user_id, quota_key) do update set
  quota_limit = excluded.quota_limit, reason = excluded.reason, expires_at = excluded.expires_at,
  created_by = excluded.created_by, created_at = now()
returning quota_limit, reason, expires_at, created_by, created_at"""

DELETE_OVERRIDE = "delete from public.quota_overrides where user_id = %(user_id)s and quota_key = %(quota_key)s"

HAS_QUOTA_ROW = "select 1 from public.usage_quotas where user_id = %(user_id)s and quota_key = %(quota_key)s"

# ------------------------------------------------------------------------------------------ subscriptions

_SUBSCRIPTION_COLUMNS = """
  s.id, s.user_id, s.provider_subscription_id, s.plan_id, s.tier, s.status, s.current_period_start,
  s.current_period_end, s.paid_until, s.grace_until, s.cancel_at_period_end, s.created_at, s.updated_at"""

LIST_SUBSCRIPTIONS = f"""
select {_SUBSCRIPTION_COLUMNS}
from public.subscriptions s
where (%(status)s::text is null or s.status = %(status)s)
  and (%(after_created)s::timestamptz is null or (s.created_at, s.id) < (%(after_created)s, %(after_id)s))
order by s.created_at desc, s.id desc
limit %(limit)s"""

GET_SUBSCRIPTION = f"select {_SUBSCRIPTION_COLUMNS} from public.subscriptions s where s.id = %(id)s"

LATEST_SUBSCRIPTION_OF_USER = f"""
select {_SUBSCRIPTION_COLUMNS} from public.subscriptions s
where s.user_id = %(user_id)s
order by s.created_at desc, s.id desc
limit 1"""

USER_TIER = "select subscription_tier from public.users where id = %(user_id)s"

# ------------------------------------------------------------------------------------------ audit log

INSERT_AUDIT_ENTRY = """
insert into public.audit_log (actor_id, action, target_type, target_id, before, after, reason)
values (%(actor_id)s, %(action)s, %(target_type)s, %(target_id)s, %(before)s, %(after)s, %(reason)s)
returning id"""

LIST_AUDIT_LOG = """
select id, actor_id, action, target_type, target_id, before, after, reason, at
from public.audit_log
where (%(target_type)s::text is null or target_type = %(target_type)s)
  and (%(target_id)s::text is null or target_id = %(target_id)s)
  and (%(actor_id)s::uuid is null or actor_id = %(actor_id)s)
  and (%(after_at)s::timestamptz is null or (at, id) < (%(after_at)s, %(after_id)s))
order by at desc, id desc
limit %(limit)s"""


@dataclass(frozen=True, slots=True)
class UserRow:
    id: UUID
    email: str | None
    name: str | None
    tier: str
    subscription_status: str
    suspended_at: datetime | None
    suspension_reason: str | None
    created_at: datetime
    last_active_at: datetime | None
    messages_30d: int
    cost_30d: Decimal
    tokens_30d: int


@dataclass(frozen=True, slots=True)
class SuspensionState:
    id: UUID
    suspended_at: datetime | None
    suspension_reason: str | None
    subscription_tier: str


@dataclass(frozen=True, slots=True)
class QuotaRow:
    quota_key: str
    used_count: int
    quota_limit: int
    tier_limit: int
    next_reset_at: datetime
    reset_frequency: str
    override_limit: int | None
    override_reason: str | None
    override_expires_at: datetime | None
    override_created_by: UUID | None
    override_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class OverrideRow:
    quota_limit: int
    reason: str
    expires_at: datetime | None
    created_by: UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: UUID
    user_id: UUID
    provider_subscription_id: str
    plan_id: str
    tier: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    paid_until: datetime | None
    grace_until: datetime | None
    cancel_at_period_end: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: UUID
    actor_id: UUID | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    at: datetime


def like_pattern(text: str) -> str:
    """`text` anywhere, its own `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_users(
    conn: Connection,
    *,
    q: str | None,
    tier: str | None,
    status: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[UserRow]:
    params = {
        "q": q,
        "pattern": like_pattern(q) if q is not None else None,
        "tier": tier,
        "status": status,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        return cur.execute(LIST_USERS, params).fetchall()


def get_user(conn: Connection, user_id: UUID) -> UserRow | None:
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        return cur.execute(GET_USER, {"user_id": user_id}).fetchone()


def actor_suspended(conn: Connection, user_id: UUID) -> bool | None:
    """Whether the acting admin is suspended; None when they have no users row."""
    row = conn.execute(ACTOR_STATE, {"user_id": user_id}).fetchone()
    return None if row is None else row["suspended_at"] is not None


def lock_user(conn: Connection, user_id: UUID) -> SuspensionState | None:
    with conn.cursor(row_factory=class_row(SuspensionState)) as cur:
        return cur.execute(LOCK_USER, {"user_id": user_id}).fetchone()


def set_suspension(
    conn: Connection, user_id: UUID, *, suspended_at: datetime | None, reason: str | None
) -> dict[str, Any]:
    row = conn.execute(
        SET_SUSPENSION, {"user_id": user_id, "suspended_at": suspended_at, "reason": reason}
    ).fetchone()
    assert row is not None
    return dict(row)


def user_quotas(conn: Connection, user_id: UUID) -> list[QuotaRow]:
    with conn.cursor(row_factory=class_row(QuotaRow)) as cur:
        return cur.execute(USER_QUOTAS, {"user_id": user_id}).fetchall()


def has_quota_row(conn: Connection, user_id: UUID, quota_key: str) -> bool:
    return conn.execute(HAS_QUOTA_ROW, {"user_id": user_id, "quota_key": quota_key}).fetchone() is not None


def lock_override(conn: Connection, user_id: UUID, quota_key: str) -> OverrideRow | None:
    with conn.cursor(row_factory=class_row(OverrideRow)) as cur:
        return cur.execute(GET_OVERRIDE, {"user_id": user_id, "quota_key": quota_key}).fetchone()


def upsert_override(
    conn: Connection,
    *,
    user_id: UUID,
    quota_key: str,
    limit: int,
    reason: str,
    expires_at: datetime | None,
    actor_id: UUID,
) -> OverrideRow:
    params = {
        "user_id": user_id,
        "quota_key": quota_key,
        "limit": limit,
        "reason": reason,
        "expires_at": expires_at,
        "actor_id": actor_id,
    }
    with conn.cursor(row_factory=class_row(OverrideRow)) as cur:
        row = cur.execute(UPSERT_OVERRIDE, params).fetchone()
    assert row is not None
    return row


def delete_override(conn: Connection, user_id: UUID, quota_key: str) -> bool:
    return conn.execute(DELETE_OVERRIDE, {"user_id": user_id, "quota_key": quota_key}).rowcount == 1


def list_subscriptions(
    conn: Connection, *, status: str | None, after: tuple[datetime, UUID] | None, limit: int
) -> list[SubscriptionRow]:
    params = {
        "status": status,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(LIST_SUBSCRIPTIONS, params).fetchall()


def get_subscription(conn: Connection, subscription_id: UUID) -> SubscriptionRow | None:
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(GET_SUBSCRIPTION, {"id": subscription_id}).fetchone()


def latest_subscription_of(conn: Connection, user_id: UUID) -> SubscriptionRow | None:
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(LATEST_SUBSCRIPTION_OF_USER, {"user_id": user_id}).fetchone()


def user_tier(conn: Connection, user_id: UUID) -> str | None:
    row = conn.execute(USER_TIER, {"user_id": user_id}).fetchone()
    return None if row is None else str(row["subscription_tier"])


def insert_audit_entry(
    conn: Connection,
    *,
    actor_id: UUID | None,
    action: str,
    target_type: str,
    target_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None,
) -> UUID:
    row = conn.execute(
        INSERT_AUDIT_ENTRY,
        {
            "actor_id": actor_id,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "before": None if before is None else Jsonb(dict(before)),
            "after": None if after is None else Jsonb(dict(after)),
            "reason": reason,
        },
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def list_audit_log(
    conn: Connection,
    *,
    target_type: str | None,
    target_id: str | None,
    actor_id: UUID | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[AuditRow]:
    params = {
        "target_type": target_type,
        "target_id": target_id,
        "actor_id": actor_id,
        "after_at": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(AuditRow)) as cur:
        return cur.execute(LIST_AUDIT_LOG, params).fetchall()
