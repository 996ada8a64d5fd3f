"""Data layer of the caller's own users row (under RLS a user sees only their own)."""

from __future__ import annotations

from oneai.db.connection import Connection
from oneai.errors import UnauthorizedError

CALLER_TIER = "select subscription_tier from public.users where id = auth.uid()"


def caller_tier(conn: Connection) -> str:
    row = conn.execute(CALLER_TIER).fetchone()
    if row is None:
        raise UnauthorizedError("Unknown user")
    return str(row["subscription_tier"])
