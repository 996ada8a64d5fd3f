"""Data layer of a workspace's provider keys: named SQL, typed rows
(supabase/migrations/20261126010000_provider_keys.sql).

The user-facing statements run in the caller's user transaction under RLS (admins and owners of the
workspace) and never name `sealed_key` in what they read: the `authenticated` role has no SELECT on that
column at all. `sealed_for_use` and `usable_keys` are the service's (a service transaction): the only
reads of the sealed bytes, for a call made with the key.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple
from uuid import UUID

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

# This UTC month's estimated spend of a key: the USD cost of the usage records it served since the month began.
_SPENT_USD: Final = """coalesce((
    select sum(u.cost) from public.usage_records u
    where u.provider_key_id = k.id
      and u.created_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'
  ), 0)"""
_COLUMNS: Final = f"""k.id, k.workspace_id, k.provider, k.name, k.last4, k.base_url, k.monthly_limit, k.status,
  k.invalid_reason, k.checked_at, k.created_by, k.created_at, k.updated_at, {_SPENT_USD} as spent_usd"""

LIST = f"""
select {_COLUMNS} from public.provider_keys k
where k.workspace_id = %s
order by k.created_at, k.id"""

GET = f"select {_COLUMNS} from public.provider_keys k where k.id = %s"

INSERT = f"""
insert into public.provider_keys as k (workspace_id, provider, name, sealed_key, last4, base_url, monthly_limit,
  created_by)
values (%(workspace)s, %(provider)s, %(name)s, %(sealed)s, %(last4)s, %(base_url)s, %(monthly_limit)s,
  (select auth.uid()))
returning {_COLUMNS}"""

DELETE = "delete from public.provider_keys k where k.id = %s returning k.id"

# Set by a test or by a call the provider refused; a new key (PATCH) makes a key active again, unchecked.
SET_STATUS = f"""
update public.provider_keys k set status = %(status)s, invalid_reason = %(reason)s, checked_at = now()
where k.id = %(id)s and (%(seen)s::timestamptz is null or k.updated_at = %(seen)s)
returning {_COLUMNS}"""

# The service's: the sealed bytes of one key, for a call made with it.
SEALED = """select k.workspace_id, k.provider, k.name, k.base_url, k.sealed_key, k.updated_at
from public.provider_keys k where k.id = %s"""

# The service's: a workspace's active keys of some providers with their sealed bytes and this month's
# estimated spend (USD cost of the usage records each served since the start of the UTC month).
USABLE = f"""
select k.id, k.workspace_id, k.provider, k.name, k.base_url, k.monthly_limit, k.sealed_key, k.created_at,
  k.updated_at, {_SPENT_USD} as spent_usd
from public.provider_keys k
where k.workspace_id = %(workspace)s and k.status = 'active' and k.provider = any(%(providers)s)
  and (%(name)s::text is null or k.provider <> 'custom' or k.name = %(name)s)
order by k.created_at, k.id"""

# Patchable columns, by name (the statement is built from this fixed set only).
PATCHABLE: Final = ("name", "sealed_key", "last4", "base_url", "monthly_limit")


class KeyRow(BaseModel):
    id: UUID
    workspace_id: UUID
    provider: str
    name: str
    last4: str
    base_url: str | None
    monthly_limit: Decimal | None
    status: str
    invalid_reason: str | None
    checked_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    spent_usd: Decimal


class UsableRow(BaseModel):
    """A key as the service reads it for a call. `sealed_key` is ciphertext (opens only with KMS); the
    repr leaves it out anyway."""

    id: UUID
    workspace_id: UUID
    provider: str
    name: str
    base_url: str | None
    monthly_limit: Decimal | None
    sealed_key: bytes
    created_at: datetime
    updated_at: datetime
    spent_usd: Decimal

    def __repr_args__(self) -> Any:
        return [(k, v) for k, v in super().__repr_args__() if k != "sealed_key"]


def list_keys(conn: Connection, workspace_id: UUID) -> list[KeyRow]:
    with conn.cursor(row_factory=class_row(KeyRow)) as cur:
        return cur.execute(LIST, (workspace_id,)).fetchall()


def get_key(conn: Connection, key_id: UUID) -> KeyRow | None:
    with conn.cursor(row_factory=class_row(KeyRow)) as cur:
        return cur.execute(GET, (key_id,)).fetchone()


def insert_key(
    conn: Connection,
    *,
    workspace_id: UUID,
    provider: str,
    name: str,
    sealed: bytes,
    last4: str,
    base_url: str | None,
    monthly_limit: Decimal | None,
) -> KeyRow:
    params = {
        "workspace": workspace_id,
        "provider": provider,
        "name": name,
        "sealed": sealed,
        "last4": last4,
        "base_url": base_url,
        "monthly_limit": monthly_limit,
    }
    with conn.cursor(row_factory=class_row(KeyRow)) as cur:
        row = cur.execute(INSERT, params).fetchone()
    assert row is not None
    return row


def update_key(conn: Connection, key_id: UUID, changes: dict[str, Any]) -> KeyRow | None:
    """Set `changes` (columns of PATCHABLE); a new `sealed_key` makes the key active again, unchecked."""
    from psycopg import sql

    unknown = set(changes) - set(PATCHABLE)
    if unknown:
        raise ValueError(f"not patchable: {sorted(unknown)}")
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in changes
    ]
    if "sealed_key" in changes:
        assignments += [sql.SQL("status = 'active', invalid_reason = null, checked_at = null")]
    if not assignments:
        return get_key(conn, key_id)
    statement = sql.SQL("update public.provider_keys k set {} where k.id = {} returning {}").format(
        sql.SQL(", ").join(assignments), sql.Placeholder("id"), sql.SQL(_COLUMNS)
    )
    with conn.cursor(row_factory=class_row(KeyRow)) as cur:
        return cur.execute(statement, {**changes, "id": key_id}).fetchone()


def delete_key(conn: Connection, key_id: UUID) -> bool:
    return conn.execute(DELETE, (key_id,)).fetchone() is not None


def set_status(
    conn: Connection, key_id: UUID, status: str, reason: str | None, *, if_updated_at: datetime | None = None
) -> KeyRow | None:
    """Record a test's or a refusal's outcome. With `if_updated_at`, only if the key is unchanged since then
    (the `updated_at` read with the sealed bytes that were called): a key replaced, renamed or re-checked
    while the call was in flight keeps its status. None: no such key (or changed)."""
    params = {"id": key_id, "status": status, "reason": reason, "seen": if_updated_at}
    with conn.cursor(row_factory=class_row(KeyRow)) as cur:
        return cur.execute(SET_STATUS, params).fetchone()


class SealedKey(NamedTuple):
    """A key's sealed bytes with what they go with, read together: where a call with them goes
    (`provider`, `base_url`), its name, and `updated_at` (what a status is recorded against)."""

    workspace_id: UUID
    provider: str
    name: str
    base_url: str | None
    sealed: bytes
    updated_at: datetime


def sealed_for_use(conn: Connection, key_id: UUID) -> SealedKey | None:
    """The service's: a key's sealed bytes and the row they were read with (one statement, so the key is
    never paired with another version's base_url)."""
    row = conn.execute(SEALED, (key_id,)).fetchone()
    if row is None:
        return None
    return SealedKey(
        workspace_id=UUID(str(row["workspace_id"])),
        provider=row["provider"],
        name=row["name"],
        base_url=row["base_url"],
        sealed=bytes(row["sealed_key"]),
        updated_at=row["updated_at"],
    )


def usable_keys(
    conn: Connection, workspace_id: UUID, providers: list[str], custom_name: str | None
) -> list[UsableRow]:
    """The service's: the workspace's active keys of `providers` (a custom one only when named
    `custom_name`), oldest first, with this month's spend."""
    params = {"workspace": workspace_id, "providers": providers, "name": custom_name}
    with conn.cursor(row_factory=class_row(UsableRow)) as cur:
        return cur.execute(USABLE, params).fetchall()
