"""Workspaces: list (search, owner, state, stats) and suspension."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oneai.admin import workspaces as service
from oneai.admin.models import AdminWorkspace, SuspendRequest, WorkspaceListQuery
from oneai.pagination import Page
from oneai.web import AdminPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

router = APIRouter(prefix="/admin/workspaces", tags=["workspaces"])


@router.get("", summary="Workspaces, newest first; search name/slug/id, filter by owner or state")
def list_workspaces(
    admin: AdminPrincipal, db: Db, query: Annotated[WorkspaceListQuery, Query()]
) -> Page[AdminWorkspace]:
    return service.list_workspaces(db, admin, query)


@router.post(
    "/{workspace_id}/suspend",
    summary="Suspend: its chatbots and widget stop answering",
    responses={409: {"model": ErrorEnvelope, "description": "CONFLICT: the workspace is already suspended"}},
)
def suspend_workspace(admin: AdminPrincipal, db: Db, workspace_id: PathId, body: SuspendRequest) -> AdminWorkspace:
    return service.suspend_workspace(db, admin, workspace_id, body)


@router.post(
    "/{workspace_id}/unsuspend",
    summary="Lift a workspace's suspension",
    responses={409: {"model": ErrorEnvelope, "description": "CONFLICT: the workspace is not suspended"}},
)
def unsuspend_workspace(admin: AdminPrincipal, db: Db, workspace_id: PathId) -> AdminWorkspace:
    return service.unsuspend_workspace(db, admin, workspace_id)
