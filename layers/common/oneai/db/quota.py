"""Data layer of quotas: named SQL calling the `oneai_private` quota functions, typed rows.

Every function runs inside a user transaction opened by `Database.user_transaction`: the SQL functions
act on `auth.uid()`'s rows only (see the migration `20261121010000_quota_functions.sql`).
"""

from __future__ import annotations

from datetime import datetime

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection
from oneai.quota.tiers import QuotaKey, ResetFrequency, TierName

STATE_COLUMNS = (
    "quota_key, used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at, subscription_tier"
)

# One conditional UPDATE (a due reset applied, the limit in its WHERE); a refusal is a row too.
RESERVE_QUOTA = f"select {STATE_COLUMNS}, admitted from oneai_private.reserve_quota(%s, %s)"
CLAIM_WARNINGS = "select oneai_private.claim_quota_warnings(%s) as thresholds"
REFUND_QUOTA = "select oneai_private.refund_quota(%s, %s, %s) as refunded"
CURRENT_QUOTAS = f"select {STATE_COLUMNS} from oneai_private.current_quotas() order by quota_key"


class QuotaRow(BaseModel):
    """A quota row as it stands now (a due reset already applied)."""

    quota_key: QuotaKey
    used_count: int
    quota_limit: int
    reset_frequency: ResetFrequency
    # The start of the current window: a reservation's window identity.
    last_reset_at: datetime
    next_reset_at: datetime
    subscription_tier: TierName


class ReserveOutcome(BaseModel):
    """What reserve_quota answered. Without a quota row for the key: limit 0 and no window."""

    quota_key: QuotaKey
    used_count: int
    quota_limit: int
    reset_frequency: ResetFrequency | None
    last_reset_at: datetime | None
    next_reset_at: datetime | None
    subscription_tier: TierName
    admitted: bool


def reserve_quota(conn: Connection, quota_key: QuotaKey, units: int) -> ReserveOutcome:
    with conn.cursor(row_factory=class_row(ReserveOutcome)) as cur:
        row = cur.execute(RESERVE_QUOTA, (quota_key, units)).fetchone()
    if row is None:  # only without a users row, which a user transaction has already ruled out
        raise LookupError("reserve_quota returned no row: the caller has no users row")
    return row


def claim_quota_warnings(conn: Connection, quota_key: QuotaKey) -> list[int]:
    """The warning thresholds (80, 90, 100) the caller's use of `quota_key` crossed just now, each once
    per window (see `20261121040000_quota_warnings.sql`)."""
    row = conn.execute(CLAIM_WARNINGS, (quota_key,)).fetchone()
    return [int(t) for t in (row["thresholds"] if row else [])]


def refund_quota(conn: Connection, quota_key: QuotaKey, units: int, window_started_at: datetime) -> bool:
    row = conn.execute(REFUND_QUOTA, (quota_key, units, window_started_at)).fetchone()
    return bool(row and row["refunded"])


def current_quotas(conn: Connection) -> list[QuotaRow]:
    with conn.cursor(row_factory=class_row(QuotaRow)) as cur:
        return cur.execute(CURRENT_QUOTAS).fetchall()
