"""Data layer of workspaces, members and invitations: named SQL, typed rows.

Everything here runs in the caller's user transaction, under the policies of
supabase/migrations/20261123100000_workspaces.sql (a non-member's statements see and change nothing), except
`invitation_for_mail`, which the notifications function runs as the service. The security definer
functions it calls act only for `auth.uid()` (20261123110000_workspace_routes.sql).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from oneai.db.connection import Connection
from oneai.money import balance_decimal
from oneai.workspaces.models import Invitation, Member, MembershipRow, OwnerPlan, Workspace

# What `stats` counts, one SQL expression each over the workspace `w`. The platform's later tables
# (chatbots, documents, credits, widget messages) replace their constant here and nothing else changes.
STATS: Final[dict[str, str]] = {
    "chatbots": "(select count(*) from public.chatbots b where b.workspace_id = w.id and b.deleted_at is null)",
    "documents": "(select count(*) from public.documents d where d.workspace_id = w.id)",
    "storage_bytes": "(select coalesce(sum(d.size_bytes), 0) from public.documents d where d.workspace_id = w.id)",
    # the last 30 UTC days, today included, from the analytics rollups (AnalyticsFunction, every 5 minutes)
    "messages_30d": (
        "(select coalesce(sum(a.messages), 0) from public.chatbot_daily_analytics a where a.workspace_id = w.id"
        " and a.day > (now() at time zone 'UTC')::date - 30)"
    ),
    "credits_balance": "(select c.balance from public.workspace_credits c where c.workspace_id = w.id)",
    "members": "(select count(*) from public.workspace_members c where c.workspace_id = w.id)",
}
STATS_COLUMNS = ", ".join(f"{expression} as stat_{name}" for name, expression in STATS.items())

# A workspace as the caller sees it: their membership is the join, so a non-member's row is never there
# (the policies would hide it anyway; the join also names the caller's role).
_WORKSPACE = f"""
select w.id, w.name, w.slug, w.industry, w.personal, m.role, w.settings, w.created_at, w.updated_at,
  {STATS_COLUMNS}
from public.workspaces w
join public.workspace_members m on m.workspace_id = w.id and m.user_id = (select auth.uid())"""

LIST_WORKSPACES = f"""{_WORKSPACE}
where w.deleted_at is null
  and (%(after_created)s::timestamptz is null or (w.created_at, w.id) > (%(after_created)s, %(after_id)s::uuid))
order by w.created_at, w.id
limit %(limit)s"""

GET_WORKSPACE = f"{_WORKSPACE} where w.id = %s and w.deleted_at is null"

MEMBERSHIP = """
select w.id, w.personal, w.owner_id, w.deleted_at, m.role
from public.workspaces w
join public.workspace_members m on m.workspace_id = w.id and m.user_id = (select auth.uid())
where w.id = %s"""

CREATE_WORKSPACE = "select oneai_private.create_workspace(%s, %s, %s, %s) as answer"
OWNER_PLAN = "select tier, workspaces_owned from oneai_private.workspace_owner_plan(%s)"
# Today's (UTC) messages admitted under the plan's daily limit (oneai_private.admit_workspace_message).
MESSAGES_TODAY = """
select coalesce((select used from public.workspace_message_counts
                 where workspace_id = %s and day = (now() at time zone 'utc')::date), 0) as used"""

UPDATE_WORKSPACE = """
update public.workspaces set
  name = case when %(set_name)s then %(name)s else name end,
  industry = case when %(set_industry)s then %(industry)s else industry end,
  settings = case when %(set_settings)s then %(settings)s else settings end
where id = %(id)s and deleted_at is null
returning id"""

SOFT_DELETE = "update public.workspaces set deleted_at = now() where id = %s and deleted_at is null returning id"
RESTORE = """
update public.workspaces set deleted_at = null
where id = %s and deleted_at > now() - make_interval(days => %s)
returning id"""

LIST_MEMBERS = """
select user_id, email, name, role, joined_at from oneai_private.workspace_member_profiles(%(workspace)s)
where (%(after_joined)s::timestamptz is null or (joined_at, user_id) > (%(after_joined)s, %(after_user)s::uuid))
order by joined_at, user_id
limit %(limit)s"""
GET_MEMBER = "select user_id, email, name, role, joined_at from oneai_private.workspace_member_profiles(%s) where user_id = %s"
MEMBER_WITH_EMAIL = "select 1 from oneai_private.workspace_member_profiles(%s) where lower(email) = lower(%s)"
MEMBER_ROLE = "select role from public.workspace_members where workspace_id = %s and user_id = %s"
COUNT_MEMBERS = "select count(*) as n from public.workspace_members where workspace_id = %s"
UPDATE_MEMBER = (
    "update public.workspace_members set role = %s where workspace_id = %s and user_id = %s returning user_id"
)
DELETE_MEMBER = "delete from public.workspace_members where workspace_id = %s and user_id = %s returning user_id"

_INVITATION_COLUMNS = "id, workspace_id, email, role, invited_by, created_at, expires_at"
# An expired invitation still holds its address's pending slot (the unique index): a new one replaces it.
DROP_EXPIRED_INVITATION = """
delete from public.workspace_invitations
where workspace_id = %s and lower(email) = lower(%s) and accepted_at is null and expires_at <= now()"""
INSERT_INVITATION = f"""
insert into public.workspace_invitations (id, workspace_id, email, role, token_hash, invited_by, expires_at)
values (%s, %s, %s, %s, %s, (select auth.uid()), now() + make_interval(days => %s))
returning {_INVITATION_COLUMNS}"""
COUNT_PENDING_INVITATIONS = """
select count(*) as n from public.workspace_invitations
where workspace_id = %s and accepted_at is null and expires_at > now()"""
LIST_INVITATIONS = f"""
select {_INVITATION_COLUMNS} from public.workspace_invitations
where workspace_id = %(workspace)s and accepted_at is null and expires_at > now()
  and (%(after_created)s::timestamptz is null or (created_at, id) > (%(after_created)s, %(after_id)s::uuid))
order by created_at, id
limit %(limit)s"""
DELETE_INVITATION = """
delete from public.workspace_invitations where id = %s and workspace_id = %s and accepted_at is null returning id"""

ACCEPT_INVITATION = "select oneai_private.accept_workspace_invitation(%s, %s) as answer"

# Service role (the notifications function): what the invitation email says, while it is still pending.
INVITATION_FOR_MAIL = """
select i.id, i.email, i.role, i.expires_at, i.invited_by, w.name as workspace_name,
  coalesce(nullif(u.name, ''), u.email) as inviter
from public.workspace_invitations i
join public.workspaces w on w.id = i.workspace_id and w.deleted_at is null
join public.users u on u.id = i.invited_by
where i.id = %s and i.accepted_at is null and i.expires_at > now()"""


class InvitationMail(BaseModel):
    id: UUID
    email: str
    role: str
    expires_at: datetime
    invited_by: UUID
    workspace_name: str
    inviter: str | None


def _page(after: tuple[datetime, UUID] | None, limit: int, time_key: str, id_key: str) -> dict[str, Any]:
    """A list's keyset parameters: the last row's (time, id) of the previous page, or none."""
    return {time_key: after[0] if after else None, id_key: after[1] if after else None, "limit": limit}


def _workspace(row: dict[str, Any]) -> Workspace:
    stats = {name: row.pop(f"stat_{name}") for name in STATS}
    # INR as the API writes it (at least cents); a workspace has its credits account from its creation.
    stats["credits_balance"] = balance_decimal(stats["credits_balance"] or Decimal(0))
    return Workspace.model_validate({**row, "stats": stats})


def list_workspaces(conn: Connection, *, after: tuple[datetime, UUID] | None, limit: int) -> list[Workspace]:
    params = _page(after, limit, "after_created", "after_id")
    return [_workspace(dict(row)) for row in conn.execute(LIST_WORKSPACES, params).fetchall()]


def get_workspace(conn: Connection, workspace_id: UUID) -> Workspace | None:
    row = conn.execute(GET_WORKSPACE, (workspace_id,)).fetchone()
    return None if row is None else _workspace(dict(row))


def membership(conn: Connection, workspace_id: UUID) -> MembershipRow | None:
    with conn.cursor(row_factory=class_row(MembershipRow)) as cur:
        return cur.execute(MEMBERSHIP, (workspace_id,)).fetchone()


def create_workspace(
    conn: Connection, *, name: str, slug: str, industry: str | None, owned_limits: dict[str, int]
) -> dict[str, Any]:
    row = conn.execute(CREATE_WORKSPACE, (name, slug, industry, Jsonb(owned_limits))).fetchone()
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def owner_plan(conn: Connection, workspace_id: UUID) -> OwnerPlan | None:
    with conn.cursor(row_factory=class_row(OwnerPlan)) as cur:
        return cur.execute(OWNER_PLAN, (workspace_id,)).fetchone()


def messages_today(conn: Connection, workspace_id: UUID) -> int:
    row = conn.execute(MESSAGES_TODAY, (workspace_id,)).fetchone()
    return int(row["used"]) if row else 0


def update_workspace(conn: Connection, workspace_id: UUID, changes: dict[str, Any]) -> bool:
    params = {
        "id": workspace_id,
        "set_name": "name" in changes,
        "name": changes.get("name"),
        "set_industry": "industry" in changes,
        "industry": changes.get("industry"),
        "set_settings": "settings" in changes,
        "settings": Jsonb(changes.get("settings") or {}),
    }
    return conn.execute(UPDATE_WORKSPACE, params).fetchone() is not None


def soft_delete(conn: Connection, workspace_id: UUID) -> bool:
    return conn.execute(SOFT_DELETE, (workspace_id,)).fetchone() is not None


def restore(conn: Connection, workspace_id: UUID, within_days: int) -> bool:
    return conn.execute(RESTORE, (workspace_id, within_days)).fetchone() is not None


def list_members(
    conn: Connection, workspace_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Member]:
    params = {"workspace": workspace_id, **_page(after, limit, "after_joined", "after_user")}
    with conn.cursor(row_factory=class_row(Member)) as cur:
        return cur.execute(LIST_MEMBERS, params).fetchall()


def get_member(conn: Connection, workspace_id: UUID, user_id: UUID) -> Member | None:
    with conn.cursor(row_factory=class_row(Member)) as cur:
        return cur.execute(GET_MEMBER, (workspace_id, user_id)).fetchone()


def has_member_with_email(conn: Connection, workspace_id: UUID, email: str) -> bool:
    return conn.execute(MEMBER_WITH_EMAIL, (workspace_id, email)).fetchone() is not None


def member_role(conn: Connection, workspace_id: UUID, user_id: UUID) -> str | None:
    row = conn.execute(MEMBER_ROLE, (workspace_id, user_id)).fetchone()
    return None if row is None else str(row["role"])


def count_members(conn: Connection, workspace_id: UUID) -> int:
    row = conn.execute(COUNT_MEMBERS, (workspace_id,)).fetchone()
    return int(row["n"]) if row else 0


def update_member(conn: Connection, workspace_id: UUID, user_id: UUID, role: str) -> bool:
    return conn.execute(UPDATE_MEMBER, (role, workspace_id, user_id)).fetchone() is not None


def delete_member(conn: Connection, workspace_id: UUID, user_id: UUID) -> bool:
    return conn.execute(DELETE_MEMBER, (workspace_id, user_id)).fetchone() is not None


def count_pending_invitations(conn: Connection, workspace_id: UUID) -> int:
    row = conn.execute(COUNT_PENDING_INVITATIONS, (workspace_id,)).fetchone()
    return int(row["n"]) if row else 0


def insert_invitation(
    conn: Connection,
    *,
    invitation_id: UUID,
    workspace_id: UUID,
    email: str,
    role: str,
    token_hash: bytes,
    valid_days: int,
) -> Invitation:
    conn.execute(DROP_EXPIRED_INVITATION, (workspace_id, email))
    with conn.cursor(row_factory=class_row(Invitation)) as cur:
        row = cur.execute(
            INSERT_INVITATION, (invitation_id, workspace_id, email, role, token_hash, valid_days)
        ).fetchone()
    assert row is not None
    return row


def list_invitations(
    conn: Connection, workspace_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Invitation]:
    params = {"workspace": workspace_id, **_page(after, limit, "after_created", "after_id")}
    with conn.cursor(row_factory=class_row(Invitation)) as cur:
        return cur.execute(LIST_INVITATIONS, params).fetchall()


def delete_invitation(conn: Connection, workspace_id: UUID, invitation_id: UUID) -> bool:
    return conn.execute(DELETE_INVITATION, (invitation_id, workspace_id)).fetchone() is not None


def accept_invitation(conn: Connection, token_hash: bytes, member_limits: dict[str, int]) -> dict[str, Any]:
    row = conn.execute(ACCEPT_INVITATION, (token_hash, Jsonb(member_limits))).fetchone()
    assert row is not None
    answer: dict[str, Any] = row["answer"]
    return answer


def invitation_for_mail(conn: Connection, invitation_id: UUID) -> InvitationMail | None:
    with conn.cursor(row_factory=class_row(InvitationMail)) as cur:
        return cur.execute(INVITATION_FOR_MAIL, (invitation_id,)).fetchone()
