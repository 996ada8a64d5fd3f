"""Routes of the workspaces function: each opens the caller's transaction and calls the service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from oneai.pagination import DEFAULT_LIMIT, Page, PageRequest
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId
from oneai.web.paging import Cursor, Limit
from oneai.workspaces import service
from oneai.workspaces.models import (
    Invitation,
    InvitationCreate,
    Member,
    MemberUpdate,
    Workspace,
    WorkspaceCreate,
    WorkspaceDetail,
    WorkspaceUpdate,
)
from oneai.workspaces.tokens import MAX_TOKEN_CHARS

Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN_CHARS, description="the token of the accept link")]

Responses = dict[int | str, dict[str, Any]]


def refused(status_code: int, description: str) -> Responses:
    """An error answer of a route, for its OpenAPI document."""
    return {status_code: {"model": ErrorEnvelope, "description": description}}


PLAN_LIMIT = refused(402, "PLAN_LIMIT: details limit, used, tier (the owner's tier)")

workspaces = APIRouter(prefix="/workspaces", tags=["workspaces"])
members = APIRouter(prefix="/workspaces/{workspace_id}/members", tags=["members"])
invitations = APIRouter(tags=["invitations"])


@workspaces.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a workspace (you are its owner)",
    responses={**PLAN_LIMIT, **refused(409, "CONFLICT: you own one of this name")},
)
def create_workspace(principal: CurrentPrincipal, db: Db, body: WorkspaceCreate) -> Workspace:
    with db.user_transaction(principal) as conn:
        return service.create_workspace(conn, db.settings, body)


@workspaces.get("", summary="Your workspaces, with your role and their stats")
def list_workspaces(
    principal: CurrentPrincipal, db: Db, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Workspace]:
    with db.user_transaction(principal) as conn:
        return service.list_workspaces(conn, PageRequest(limit=limit, cursor=cursor))


@workspaces.get("/{workspace_id}", summary="A workspace with its owner's tier, limits and usage")
def get_workspace(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> WorkspaceDetail:
    with db.user_transaction(principal) as conn:
        return service.get_workspace(conn, db.settings, workspace_id)


@workspaces.patch(
    "/{workspace_id}",
    summary="Change the name, industry or settings (admins)",
    responses=refused(409, "CONFLICT: the owner has a workspace of this name"),
)
def update_workspace(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: WorkspaceUpdate
) -> WorkspaceDetail:
    with db.user_transaction(principal) as conn:
        return service.update_workspace(conn, db.settings, workspace_id, body)


@workspaces.delete(
    "/{workspace_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete (owners): restorable for 30 days, then purged",
    responses=refused(409, "CONFLICT: a personal workspace"),
)
def delete_workspace(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.delete_workspace(conn, workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@workspaces.post(
    "/{workspace_id}/restore",
    summary="Restore a deleted workspace within 30 days (owners)",
    responses={**PLAN_LIMIT, **refused(409, "CONFLICT: not deleted, or name taken")},
)
def restore_workspace(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> WorkspaceDetail:
    with db.user_transaction(principal) as conn:
        return service.restore_workspace(conn, db.settings, workspace_id)


@members.get("", summary="The members, with their role")
def list_members(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Member]:
    with db.user_transaction(principal) as conn:
        return service.list_members(conn, workspace_id, PageRequest(limit=limit, cursor=cursor))


@members.patch(
    "/{user_id}",
    summary="Change a member's role (admins; owners for anything about owners)",
    responses=refused(409, "CONFLICT: the last owner would be demoted"),
)
def change_role(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, user_id: PathId, body: MemberUpdate
) -> Member:
    with db.user_transaction(principal) as conn:
        return service.change_role(conn, workspace_id, user_id, body)


@members.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (admins; owners for an owner), or leave (your own id)",
    responses=refused(409, "CONFLICT: the last owner would leave"),
)
def remove_member(principal: CurrentPrincipal, db: Db, workspace_id: PathId, user_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.remove_member(conn, principal.user_id, workspace_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@invitations.post(
    "/workspaces/{workspace_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    summary="Invite an email address (admins): an email with an accept link, valid 7 days",
    responses={**PLAN_LIMIT, **refused(409, "CONFLICT: a member, or a pending invitation, has this address")},
)
def invite(principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: InvitationCreate) -> Invitation:
    with db.user_transaction(principal) as conn:
        invitation = service.invite(conn, db.settings, workspace_id, body)
    service.announce_invitation(invitation)  # committed: the email may go
    return invitation


@invitations.get("/workspaces/{workspace_id}/invitations", summary="Pending invitations (admins)")
def list_invitations(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Invitation]:
    with db.user_transaction(principal) as conn:
        return service.list_invitations(conn, workspace_id, PageRequest(limit=limit, cursor=cursor))


@invitations.delete(
    "/workspaces/{workspace_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Withdraw a pending invitation (admins): its link stops working",
)
def withdraw_invitation(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, invitation_id: PathId
) -> Response:
    with db.user_transaction(principal) as conn:
        service.withdraw_invitation(conn, workspace_id, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@invitations.post(
    "/invitations/{token}/accept",
    summary="Accept an invitation as the invited, verified email: you become a member",
    responses={**PLAN_LIMIT, **refused(409, "CONFLICT: already a member")},
)
def accept_invitation(principal: CurrentPrincipal, db: Db, token: Token) -> Workspace:
    with db.user_transaction(principal) as conn:
        return service.accept_invitation(conn, db.settings, principal.claims, token)
