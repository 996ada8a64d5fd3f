"""Data layer of the product's own work on workspaces: the admin's list and suspensions, and the sweep's
purge of workspaces deleted long ago.

Every function runs inside a service transaction (role `service_role`, which bypasses RLS on purpose: an
admin and the sweep act on every workspace). What members do with their own workspaces is the workspace
routes' data module's, under RLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.admin import like_pattern
from oneai.db.connection import Connection
from oneai.db.workspaces import STATS_COLUMNS

# A soft-deleted workspace can be restored for this many days; then the sweep purges it.
PURGE_AFTER_DAYS: Final = 30

# The admin list: newest first, paged by (created_at, id) through idx_workspaces_created; the stats are the
# members' own (oneai.db.workspaces.STATS), counted for the rows on the page only.
_WORKSPACES_WITH_OWNER = f"""
select w.id, w.name, w.slug, w.industry, w.personal, w.created_at, w.updated_at, w.deleted_at,
       w.suspended_at, w.owner_id, u.email as owner_email, u.name as owner_name,
       {STATS_COLUMNS}
from public.workspaces w
join public.users u on u.id = w.owner_id"""

LIST_WORKSPACES = f"""{_WORKSPACES_WITH_OWNER}
where (%(q)s::text is null
       or w.name ilike %(pattern)s escape '\\' or w.slug ilike %(pattern)s escape '\\'
       or w.id::text = lower(%(q)s))
  and (%(owner_id)s::uuid is null or w.owner_id = %(owner_id)s)
  and (%(status)s::text is null
       or (%(status)s = 'active' and w.deleted_at is null and w.suspended_at is null)
       or (%(status)s = 'suspended' and w.suspended_at is not null)
       or (%(status)s = 'deleted' and w.deleted_at is not null))
  and (%(after_created)s::timestamptz is null or (w.created_at, w.id) < (%(after_created)s, %(after_id)s))
order by w.created_at desc, w.id desc
limit %(limit)s"""

GET_WORKSPACE = f"{_WORKSPACES_WITH_OWNER}\nwhere w.id = %(workspace_id)s"

LOCK_WORKSPACE = "select suspended_at from public.workspaces where id = %(workspace_id)s for update"

SET_WORKSPACE_SUSPENSION = """
update public.workspaces set suspended_at = %(suspended_at)s where id = %(workspace_id)s
returning suspended_at"""

# One batch of the purge: the workspaces deleted more than PURGE_AFTER_DAYS ago, oldest first, locked
# (`SKIP LOCKED`: two sweeps take disjoint batches, and a sweep never waits on a restore in progress; a
# restore that comes after the lock waits, then finds the workspace gone).
LOCK_PURGEABLE_WORKSPACES = """
select id from public.workspaces
where deleted_at is not null and deleted_at < now() - make_interval(days => %(days)s)
order by deleted_at
limit %(limit)s
for update skip locked"""

# Deleting the row deletes everything in the workspace by `on delete cascade` (members, invitations,
# and every platform table's rows, which reference the workspace the same way).
DELETE_WORKSPACES = """
delete from public.workspaces
where id = any(%(ids)s::uuid[]) and deleted_at < now() - make_interval(days => %(days)s)
returning id"""


@dataclass(frozen=True, slots=True)
class SuspensionState:
    suspended_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkspaceRow:
    id: UUID
    name: str
    slug: str
    industry: str | None
    personal: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    suspended_at: datetime | None
    owner_id: UUID
    owner_email: str | None
    owner_name: str | None
    stat_chatbots: int
    stat_documents: int
    stat_storage_bytes: int
    stat_messages_30d: int
    stat_credits_balance: Decimal | None
    stat_members: int


def list_workspaces(
    conn: Connection,
    *,
    q: str | None,
    owner_id: UUID | None,
    status: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[WorkspaceRow]:
    params = {
        "q": q,
        "pattern": like_pattern(q) if q is not None else None,
        "owner_id": owner_id,
        "status": status,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(WorkspaceRow)) as cur:
        return cur.execute(LIST_WORKSPACES, params).fetchall()


def get_workspace(conn: Connection, workspace_id: UUID) -> WorkspaceRow | None:
    with conn.cursor(row_factory=class_row(WorkspaceRow)) as cur:
        return cur.execute(GET_WORKSPACE, {"workspace_id": workspace_id}).fetchone()


def lock_workspace(conn: Connection, workspace_id: UUID) -> SuspensionState | None:
    """The workspace's suspension, its row locked; None when there is no such workspace."""
    with conn.cursor(row_factory=class_row(SuspensionState)) as cur:
        return cur.execute(LOCK_WORKSPACE, {"workspace_id": workspace_id}).fetchone()


def set_workspace_suspension(
    conn: Connection, workspace_id: UUID, suspended_at: datetime | None
) -> datetime | None:
    row = conn.execute(
        SET_WORKSPACE_SUSPENSION, {"workspace_id": workspace_id, "suspended_at": suspended_at}
    ).fetchone()
    assert row is not None
    suspended: datetime | None = row["suspended_at"]
    return suspended


def lock_purgeable_workspaces(conn: Connection, limit: int, *, days: int = PURGE_AFTER_DAYS) -> list[UUID]:
    rows = conn.execute(LOCK_PURGEABLE_WORKSPACES, {"limit": limit, "days": days}).fetchall()
    return [UUID(str(r["id"])) for r in rows]


def delete_workspaces(conn: Connection, ids: list[UUID], *, days: int = PURGE_AFTER_DAYS) -> list[UUID]:
    rows = conn.execute(DELETE_WORKSPACES, {"ids": ids, "days": days}).fetchall()
    return [UUID(str(r["id"])) for r in rows]
