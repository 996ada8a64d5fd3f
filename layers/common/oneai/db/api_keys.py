"""Data layer of API keys: the caller's own keys under RLS, and the lookup by prefix that a request made
with a key starts from (`oneai_private.api_key_by_prefix`, see `20261122020100_api_keys.sql`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

KEY_COLUMNS = "id, name, prefix, created_at, last_used_at, expires_at, revoked_at"

INSERT_KEY = f"""
insert into public.api_keys (user_id, name, prefix, secret_hash, expires_at)
values ((select auth.uid()), %(name)s, %(prefix)s, %(secret_hash)s, %(expires_at)s)
returning {KEY_COLUMNS}"""

# Keys that still work (or could: not revoked, not expired), for the per-user cap.
COUNT_LIVE_KEYS = """
select count(*)::int as live from public.api_keys
where user_id = (select auth.uid()) and revoked_at is null and (expires_at is null or expires_at > now())"""

LIST_KEYS = f"""
select {KEY_COLUMNS} from public.api_keys
where user_id = (select auth.uid())
order by created_at desc, id desc
limit %(limit)s"""

# Revoking twice keeps the first revocation time; RLS makes someone else's key "not found".
REVOKE_KEY = f"""
update public.api_keys set revoked_at = coalesce(revoked_at, now())
where id = %(id)s
returning {KEY_COLUMNS}"""

KEY_BY_PREFIX = (
    "select id, user_id, secret_hash, expires_at, revoked_at from oneai_private.api_key_by_prefix(%(prefix)s)"
)

RECORD_API_USAGE = """
select oneai_private.record_api_usage(
  %(api_key_id)s, %(quota_key)s, %(requested_model)s, %(model_id)s, %(generation_id)s,
  %(prompt_tokens)s, %(completion_tokens)s, %(cost)s, %(status)s) as id"""


class ApiKeyRow(BaseModel):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyLookup(BaseModel):
    """What a request's key is checked against (the hash never leaves the server)."""

    id: UUID
    user_id: UUID
    secret_hash: bytes
    expires_at: datetime | None
    revoked_at: datetime | None


def insert_key(
    conn: Connection, *, name: str, prefix: str, secret_hash: bytes, expires_at: datetime | None
) -> ApiKeyRow:
    with conn.cursor(row_factory=class_row(ApiKeyRow)) as cur:
        row = cur.execute(
            INSERT_KEY, {"name": name, "prefix": prefix, "secret_hash": secret_hash, "expires_at": expires_at}
        ).fetchone()
    assert row is not None
    return row


def count_live_keys(conn: Connection) -> int:
    row = conn.execute(COUNT_LIVE_KEYS).fetchone()
    return int(row["live"]) if row else 0


def list_keys(conn: Connection, limit: int) -> list[ApiKeyRow]:
    with conn.cursor(row_factory=class_row(ApiKeyRow)) as cur:
        return cur.execute(LIST_KEYS, {"limit": limit}).fetchall()


def revoke_key(conn: Connection, key_id: UUID) -> ApiKeyRow | None:
    with conn.cursor(row_factory=class_row(ApiKeyRow)) as cur:
        return cur.execute(REVOKE_KEY, {"id": key_id}).fetchone()


def key_by_prefix(conn: Connection, prefix: str) -> KeyLookup | None:
    with conn.cursor(row_factory=class_row(KeyLookup)) as cur:
        return cur.execute(KEY_BY_PREFIX, {"prefix": prefix}).fetchone()


def record_api_usage(
    conn: Connection,
    *,
    api_key_id: UUID,
    quota_key: str,
    requested_model: str,
    model_id: str,
    generation_id: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cost: Decimal,
    status: str,
) -> UUID:
    row = conn.execute(
        RECORD_API_USAGE,
        {
            "api_key_id": api_key_id,
            "quota_key": quota_key,
            "requested_model": requested_model,
            "model_id": model_id,
            "generation_id": generation_id,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": cost,
            "status": status,
        },
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))
