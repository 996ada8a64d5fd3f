"""Workspaces: list (search, owner, state, stats), suspension, credit grants and adjustments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oneai.admin import workspaces as service
from oneai.admin.models import (
    AdminCreditAdjustment,
    AdminCreditGrant,
    AdminWorkspace,
    SuspendRequest,
    WorkspaceListQuery,
)
from oneai.credits.models import AdjustRequest, GrantRequest
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


@router.post(
    "/{workspace_id}/credits/grant",
    summary="Grant credits to a workspace (INR, with a reason; audited)",
    responses={404: {"model": ErrorEnvelope, "description": "NOT_FOUND: no such workspace"}},
)
def grant_credits(admin: AdminPrincipal, db: Db, workspace_id: PathId, body: GrantRequest) -> AdminCreditGrant:
    return service.grant_credits(db, admin, workspace_id, body)


@router.post(
    "/{workspace_id}/credits/adjust",
    summary="Adjust a workspace's credits up or down (signed INR, with a reason; audited)",
    responses={
        404: {"model": ErrorEnvelope, "description": "NOT_FOUND: no such workspace"},
        422: {"model": ErrorEnvelope, "description": "VALIDATION_ERROR: a debit over the available balance"},
    },
)
def adjust_credits(
    admin: AdminPrincipal, db: Db, workspace_id: PathId, body: AdjustRequest
) -> AdminCreditAdjustment:
    return service.adjust_credits(db, admin, workspace_id, body)
