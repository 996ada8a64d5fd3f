"""Changing a user's tier, in the caller's transaction: the users row (tier and, when given, status), one
`subscription_history` row, and the quota rows through `public.assign_tier_quotas`.

An upgrade starts fresh windows with zero usage; a downgrade keeps the usage of the current windows
under the new, lower limits (a user over the new limit waits for the next reset). Changing to the tier a
user already has writes nothing. The users row is locked first (`FOR UPDATE`), so two changes of the same
user queue up instead of both reading the old tier.

    with db.service_transaction() as conn:
        changed = change_tier(conn, user_id=user_id, new_tier="pro", reason="new_subscription",
                              subscription_id=subscription_id, subscription_status="active")
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args
from uuid import UUID

from psycopg.types.json import Jsonb

from oneai.db.connection import Connection
from oneai.errors import NotFoundError
from oneai.quota.tiers import TIER_NAMES, TierName

# The values of subscription_history.change_reason and users.subscription_status (initial migration).
ChangeReason = Literal[
    "new_subscription", "upgrade", "downgrade", "system", "payment_failure", "cancellation", "renewal"
]
UserSubscriptionStatus = Literal["active", "pending", "halted", "cancelled", "completed"]
CHANGE_REASONS: Final[tuple[ChangeReason, ...]] = get_args(ChangeReason)
USER_SUBSCRIPTION_STATUSES: Final[tuple[UserSubscriptionStatus, ...]] = get_args(UserSubscriptionStatus)

# Higher is more: moving up resets usage, moving down keeps it.
TIER_RANK: Final[Mapping[TierName, int]] = MappingProxyType({"free": 0, "pro": 1, "enterprise": 2})

LOCK_USER_TIER = "select subscription_tier from public.users where id = %(user_id)s for update"
SET_USER_TIER = """
update public.users set
  subscription_tier = %(tier)s,
  subscription_status = coalesce(%(status)s, subscription_status)
where id = %(user_id)s"""
INSERT_TIER_HISTORY = """
insert into public.subscription_history (user_id, subscription_id, old_tier, new_tier, change_reason, metadata)
values (%(user_id)s, %(subscription_id)s, %(old_tier)s, %(tier)s, %(reason)s, %(metadata)s)"""
ASSIGN_TIER_QUOTAS = "select public.assign_tier_quotas(%(user_id)s, %(tier)s, %(reset_usage)s)"


def is_upgrade(old_tier: TierName, new_tier: TierName) -> bool:
    return TIER_RANK[new_tier] > TIER_RANK[old_tier]


def change_tier(
    conn: Connection,
    *,
    user_id: UUID,
    new_tier: TierName,
    reason: ChangeReason,
    subscription_id: UUID | None = None,
    metadata: Mapping[str, Any] | None = None,
    subscription_status: UserSubscriptionStatus | None = None,
) -> bool:
    """Move `user_id` to `new_tier` within `conn`'s transaction (a service transaction: the tables are
    written by the service only). `subscription_status`, when given, is written to the users row with the
    change; None keeps the current status.

    Returns False, having written nothing, when the user already has `new_tier`. Raises NotFoundError for
    an unknown user and ValueError for an unknown tier, reason or status.
    """
    if new_tier not in TIER_NAMES:
        raise ValueError(f"unknown tier {new_tier!r}; known: {', '.join(TIER_NAMES)}")
    if reason not in CHANGE_REASONS:
        raise ValueError(f"unknown change reason {reason!r}; known: {', '.join(CHANGE_REASONS)}")
    if subscription_status is not None and subscription_status not in USER_SUBSCRIPTION_STATUSES:
        raise ValueError(f"unknown subscription status {subscription_status!r}")

    row = conn.execute(LOCK_USER_TIER, {"user_id": user_id}).fetchone()
    if row is None:
        raise NotFoundError("Unknown user", details={"user_id": str(user_id)})
    old_tier: TierName = row["subscription_tier"]
    if old_tier == new_tier:
        return False

    values = {
        "user_id": user_id,
        "tier": new_tier,
        "old_tier": old_tier,
        "status": subscription_status,
        "subscription_id": subscription_id,
        "reason": reason,
        "metadata": Jsonb(dict(metadata or {})),
        "reset_usage": is_upgrade(old_tier, new_tier),
    }
    conn.execute(SET_USER_TIER, values)
    conn.execute(INSERT_TIER_HISTORY, values)
    conn.execute(ASSIGN_TIER_QUOTAS, values)
    return True
