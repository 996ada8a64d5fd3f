"""Data layer of rate-limit buckets outside a request: the sweep that clears full buckets.

(A request's own check is part of its user transaction's first round trip: `oneai.db.connection`.)
"""

from __future__ import annotations

from oneai.db.connection import Connection

CLEAR_IDLE_BUCKETS = "select oneai_private.clear_idle_rate_limits(%(limit)s) as cleared"
CLEAR_IDLE_SOURCE_BUCKETS = "select oneai_private.clear_idle_source_rate_limits(%(limit)s) as cleared"


def clear_idle_buckets(conn: Connection, limit: int) -> int:
    """Delete up to `limit` buckets that are full again (they hold nothing a missing row would not)."""
    row = conn.execute(CLEAR_IDLE_BUCKETS, {"limit": limit}).fetchone()
    return int(row["cleared"]) if row else 0


def clear_idle_source_buckets(conn: Connection, limit: int) -> int:
    """Delete up to `limit` anonymous (per source) buckets that are full again."""
    row = conn.execute(CLEAR_IDLE_SOURCE_BUCKETS, {"limit": limit}).fetchone()
    return int(row["cleared"]) if row else 0
