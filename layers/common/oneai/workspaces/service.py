"""Workspaces, members and invitations (API.md "Workspaces and teams").

Every function runs in the caller's user transaction, under RLS. Each starts from the caller's membership
(`_membership`): no row means the workspace does not exist for the caller (404, whatever the id); a row
with too low a role is 403. The writes then run under the same policies, which refuse on their own what
this code would wrongly allow; the rules the data keeps itself (a personal workspace is not deleted, the
last owner stays, even under concurrent requests) come back as 409. Creating a workspace and accepting an
invitation are the two steps the caller's policies cannot take: security definer functions that act only
for `auth.uid()` (supabase/migrations/20261123110000_workspace_routes.sql).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg.errors

from oneai.config import Settings
from oneai.db import workspaces as repo
from oneai.db.connection import Connection
from oneai.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OneAIError,
    PlanLimitError,
    ValidationError,
)
from oneai.events import get_publisher
from oneai.logging import logger
from oneai.notifications.occasions import WORKSPACE_INVITATION_CREATED, WORKSPACES_SOURCE
from oneai.pagination import Page, PageRequest, decode_cursor, page_of
from oneai.workspaces.limits import limit_by_tier, workspace_limits
from oneai.workspaces.models import (
    Invitation,
    InvitationCreate,
    Member,
    MembershipRow,
    MemberUpdate,
    Role,
    Workspace,
    WorkspaceCreate,
    WorkspaceDetail,
    WorkspaceUpdate,
    WorkspaceUsage,
    at_least,
)
from oneai.workspaces.tokens import MAX_TOKEN_CHARS, invitation_token, token_hash

RESTORE_WINDOW_DAYS: Final = 30
INVITATION_VALID_DAYS: Final = 7
MAX_SLUG_BASE_CHARS: Final = 80

_LAST_OWNER = "workspace_members_last_owner"
_PERSONAL = "workspaces_personal_not_deleted"
_NAME_TAKEN = "workspaces_owner_name"
_INVITED = "workspace_invitations_pending"

NOT_FOUND = "Workspace not found"
MEMBER_NOT_FOUND = "Member not found"
INVITATION_NOT_FOUND = "Invitation not found"
# One answer for an unknown, used, expired or withdrawn token and for one addressed to someone else.
INVITATION_REFUSED = (
    "This invitation is not valid: unknown, already used, expired, withdrawn, or for another email"
)


# --- who the caller is in the workspace ---------------------------------------------------------------


def _membership(conn: Connection, workspace_id: UUID, *, deleted: bool = False) -> MembershipRow:
    """The caller's membership of a live workspace (or, with `deleted`, of one in its restore window)."""
    found = repo.membership(conn, workspace_id)
    if found is None or (found.deleted_at is not None) != deleted:
        raise NotFoundError(NOT_FOUND)
    return found


def _require(member: MembershipRow, minimum: Role) -> None:
    if not at_least(member.role, minimum):
        raise ForbiddenError(f"This needs the role {minimum} (or above) in the workspace")


def _nothing_written(conn: Connection, workspace_id: UUID, minimum: Role, missing: str) -> OneAIError:
    """A write the checks admitted changed no row: a concurrent request changed the caller's role, the
    workspace or the member in between, and the policies (evaluated on the committed state) kept the row.
    The answer is the one the new state gives: 404, 403, or `missing` (404)."""
    require_role(conn, workspace_id, minimum)
    return NotFoundError(missing)


def require_role(conn: Connection, workspace_id: UUID, minimum: Role) -> MembershipRow:
    """The caller's membership of a live workspace, at least `minimum` (404 for a non-member, 403 below it):
    the start of every route of a workspace's content (its documents, ...)."""
    member = _membership(conn, workspace_id)
    _require(member, minimum)
    return member


@contextmanager
def _data_rules() -> Iterator[None]:
    """The rules the database keeps itself, as the contract's answers."""
    try:
        yield
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name == _LAST_OWNER:
            raise ConflictError(
                "A workspace keeps at least one owner: make another member an owner first"
            ) from None
        if exc.diag.constraint_name == _PERSONAL:
            raise ConflictError("A personal workspace cannot be deleted") from None
        raise
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == _NAME_TAKEN:
            raise ConflictError("You already own a workspace of this name") from None
        if exc.diag.constraint_name == _INVITED:
            raise ConflictError("This address already has a pending invitation to the workspace") from None
        raise
    except psycopg.errors.InsufficientPrivilege:  # a policy or the owner-only trigger refused the write
        raise ForbiddenError("You are not allowed to do this in the workspace") from None


def _plan_limit(answer: Mapping[str, Any], what: str) -> PlanLimitError:
    details = {"limit": answer["limit"], "used": answer["used"], "tier": answer["tier"]}
    return PlanLimitError(f"Your plan's limit of {what} is reached", details=details)


def slug_base(name: str) -> str:
    """`Acme Support (EU)` -> `acme-support-eu`: ASCII letters and digits joined by single hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:MAX_SLUG_BASE_CHARS].strip("-")
    if not slug:
        return "workspace"
    # `personal-...` is the personal workspaces' own (a check constraint of the table).
    return f"workspace-{slug}" if slug.startswith("personal-") else slug


def _after(cursor: str | None, time_key: str, id_key: str) -> tuple[datetime, UUID] | None:
    if not cursor:
        return None
    keys = decode_cursor(cursor, {time_key: datetime.fromisoformat, id_key: UUID})
    return keys[time_key], keys[id_key]


# --- workspaces -----------------------------------------------------------------------------------------


def create_workspace(conn: Connection, settings: Settings, data: WorkspaceCreate) -> Workspace:
    answer = repo.create_workspace(
        conn,
        name=data.name,
        slug=slug_base(data.name),
        industry=data.industry,
        owned_limits=limit_by_tier(settings, "workspaces_owned"),
    )
    refused = answer.get("refused")
    if refused == "name_taken":
        raise ConflictError("You already own a workspace of this name")
    if refused == "plan_limit":
        raise _plan_limit(answer, "workspaces owned")
    created = repo.get_workspace(conn, UUID(answer["id"]))
    assert created is not None
    return created


def list_workspaces(conn: Connection, page: PageRequest) -> Page[Workspace]:
    rows = repo.list_workspaces(conn, after=_after(page.cursor, "created_at", "id"), limit=page.limit + 1)
    return page_of(rows, page.limit, lambda w: {"created_at": w.created_at.isoformat(), "id": str(w.id)})


def get_workspace(conn: Connection, settings: Settings, workspace_id: UUID) -> WorkspaceDetail:
    workspace = repo.get_workspace(conn, workspace_id)
    plan = repo.owner_plan(conn, workspace_id)
    if workspace is None or plan is None:
        raise NotFoundError(NOT_FOUND)
    stats = workspace.stats
    usage = WorkspaceUsage(
        workspaces_owned=plan.workspaces_owned,
        members=stats.members,
        chatbots=stats.chatbots,
        documents=stats.documents,
        storage_bytes=stats.storage_bytes,
        widget_messages_per_day=repo.messages_today(conn, workspace_id),
    )
    return WorkspaceDetail(
        **workspace.model_dump(), tier=plan.tier, limits=workspace_limits(settings, plan.tier), usage=usage
    )


def update_workspace(
    conn: Connection, settings: Settings, workspace_id: UUID, data: WorkspaceUpdate
) -> WorkspaceDetail:
    require_role(conn, workspace_id, "admin")
    changes = data.model_dump(include=data.model_fields_set)
    if changes.get("name", "") is None:
        raise _field_error("name", "cannot be null")
    with _data_rules():
        if not repo.update_workspace(conn, workspace_id, changes):
            raise _nothing_written(conn, workspace_id, "admin", NOT_FOUND)
    return get_workspace(conn, settings, workspace_id)


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError("The request is not valid", details={"errors": [{"field": field, "message": message}]})


def delete_workspace(conn: Connection, workspace_id: UUID) -> None:
    """Soft delete (owner): restorable for RESTORE_WINDOW_DAYS, then purged by the sweep."""
    member = require_role(conn, workspace_id, "owner")
    if member.personal:
        raise ConflictError("A personal workspace cannot be deleted")
    with _data_rules():
        if not repo.soft_delete(conn, workspace_id):
            raise _nothing_written(conn, workspace_id, "owner", NOT_FOUND)


def restore_workspace(conn: Connection, settings: Settings, workspace_id: UUID) -> WorkspaceDetail:
    found = repo.membership(conn, workspace_id)
    if found is None:
        raise NotFoundError(NOT_FOUND)
    if found.deleted_at is None:
        raise ConflictError("This workspace is not deleted")
    _require(found, "owner")
    plan = repo.owner_plan(conn, workspace_id)
    assert plan is not None  # the caller is a member
    limit = workspace_limits(settings, plan.tier).workspaces_owned
    if plan.workspaces_owned >= limit:
        raise PlanLimitError(
            "Your plan's limit of workspaces owned is reached",
            details={"limit": limit, "used": plan.workspaces_owned, "tier": plan.tier},
        )
    with _data_rules():
        if not repo.restore(conn, workspace_id, RESTORE_WINDOW_DAYS):
            raise NotFoundError(NOT_FOUND)  # past the restore window: it is being purged
    return get_workspace(conn, settings, workspace_id)


# --- members --------------------------------------------------------------------------------------------


def list_members(conn: Connection, workspace_id: UUID, page: PageRequest) -> Page[Member]:
    _membership(conn, workspace_id)
    rows = repo.list_members(
        conn, workspace_id, after=_after(page.cursor, "joined_at", "user_id"), limit=page.limit + 1
    )
    return page_of(rows, page.limit, lambda m: {"joined_at": m.joined_at.isoformat(), "user_id": str(m.user_id)})


def change_role(conn: Connection, workspace_id: UUID, user_id: UUID, data: MemberUpdate) -> Member:
    """Admins change editors and viewers (and admins); making or unmaking an owner takes an owner."""
    member = require_role(conn, workspace_id, "admin")
    current = repo.member_role(conn, workspace_id, user_id)
    if current is None:
        raise NotFoundError(MEMBER_NOT_FOUND)
    if "owner" in (current, data.role):
        _require(member, "owner")
    with _data_rules():
        if not repo.update_member(conn, workspace_id, user_id, data.role):
            raise _nothing_written(
                conn, workspace_id, "owner" if "owner" in (current, data.role) else "admin", MEMBER_NOT_FOUND
            )
    changed = repo.get_member(conn, workspace_id, user_id)
    assert changed is not None
    return changed


def remove_member(conn: Connection, caller_id: UUID, workspace_id: UUID, user_id: UUID) -> None:
    """Remove a member (admins; an owner takes an owner), or leave (yourself, any role)."""
    member = _membership(conn, workspace_id)
    current: str | None = member.role
    if user_id != caller_id:
        _require(member, "admin")
        current = repo.member_role(conn, workspace_id, user_id)
        if current is None:
            raise NotFoundError(MEMBER_NOT_FOUND)
        if current == "owner":
            _require(member, "owner")
    with _data_rules():
        if not repo.delete_member(conn, workspace_id, user_id):
            minimum: Role = "viewer" if user_id == caller_id else "owner" if current == "owner" else "admin"
            raise _nothing_written(conn, workspace_id, minimum, MEMBER_NOT_FOUND)


# --- invitations ----------------------------------------------------------------------------------------


def invite(conn: Connection, settings: Settings, workspace_id: UUID, data: InvitationCreate) -> Invitation:
    """A pending invitation (admins). Members and pending invitations together stay within the owner's
    tier's member limit; accepting counts again, under the workspace's lock."""
    require_role(conn, workspace_id, "admin")
    if repo.has_member_with_email(conn, workspace_id, data.email):
        raise ConflictError("This address is already a member of the workspace")
    plan = repo.owner_plan(conn, workspace_id)
    assert plan is not None
    limit = workspace_limits(settings, plan.tier).members
    used = repo.count_members(conn, workspace_id) + repo.count_pending_invitations(conn, workspace_id)
    if used >= limit:
        raise PlanLimitError(
            "Your plan's limit of members is reached (pending invitations count)",
            details={"limit": limit, "used": used, "tier": plan.tier},
        )
    invitation_id = uuid.uuid4()
    token = invitation_token(settings, invitation_id)  # 503 before anything is written if not configured
    with _data_rules():
        return repo.insert_invitation(
            conn,
            invitation_id=invitation_id,
            workspace_id=workspace_id,
            email=data.email,
            role=data.role,
            token_hash=token_hash(token),
            valid_days=INVITATION_VALID_DAYS,
        )


def announce_invitation(invitation: Invitation) -> bool:
    """After the invitation committed: the event the notifications function sends the email for (the
    invitation's id and inviter only; the link is rebuilt there). Best effort, never raises."""
    try:
        detail = {"user_id": str(invitation.invited_by), "invitation_id": str(invitation.id)}
        return get_publisher().publish(WORKSPACES_SOURCE, WORKSPACE_INVITATION_CREATED, detail)
    except Exception as exc:
        logger.warning("invitation not announced", extra={"error_type": type(exc).__name__})
        return False


def list_invitations(conn: Connection, workspace_id: UUID, page: PageRequest) -> Page[Invitation]:
    require_role(conn, workspace_id, "admin")
    rows = repo.list_invitations(
        conn, workspace_id, after=_after(page.cursor, "created_at", "id"), limit=page.limit + 1
    )
    return page_of(rows, page.limit, lambda i: {"created_at": i.created_at.isoformat(), "id": str(i.id)})


def withdraw_invitation(conn: Connection, workspace_id: UUID, invitation_id: UUID) -> None:
    require_role(conn, workspace_id, "admin")
    if not repo.delete_invitation(conn, workspace_id, invitation_id):
        raise NotFoundError(INVITATION_NOT_FOUND)


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The token's email when Supabase says it is confirmed (`email_verified`, at the top or in
    `user_metadata` as Supabase Auth writes it), else None."""
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        return None
    metadata = claims.get("user_metadata")
    in_metadata = isinstance(metadata, dict) and metadata.get("email_verified") is True
    if claims.get("email_verified") is True or in_metadata:
        return email.strip().lower()
    return None


def accept_invitation(conn: Connection, settings: Settings, claims: Mapping[str, Any], token: str) -> Workspace:
    if verified_email(claims) is None:
        raise ForbiddenError("Confirm your email address first: only a verified address accepts an invitation")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise NotFoundError(INVITATION_REFUSED)
    with _data_rules():
        answer = repo.accept_invitation(conn, token_hash(token), limit_by_tier(settings, "members"))
    refused = answer.get("refused")
    if refused == "already_member":
        raise ConflictError("You are already a member of this workspace")
    if refused == "plan_limit":
        raise _plan_limit(answer, "members")
    if refused is not None:
        raise NotFoundError(INVITATION_REFUSED)
    workspace = repo.get_workspace(conn, UUID(answer["workspace_id"]))
    assert workspace is not None
    return workspace
