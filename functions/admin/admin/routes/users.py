"""Users: list, detail, suspension, quota overrides and erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from oneai.admin import service
from oneai.admin.models import (
    AdminQuota,
    AdminUser,
    AdminUserDetail,
    QuotaOverrideRequest,
    SuspendRequest,
    UserListQuery,
)
from oneai.billing.razorpay_client import get_razorpay_client
from oneai.pagination import Page
from oneai.quota.tiers import QuotaKey
from oneai.web import AdminPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

router = APIRouter(prefix="/admin/users", tags=["users"])


@router.get("", summary="Users, newest first; filter by e-mail/name/id, tier or status")
def list_users(admin: AdminPrincipal, db: Db, query: Annotated[UserListQuery, Query()]) -> Page[AdminUser]:
    return service.list_users(db, admin, query)


@router.get("/{user_id}", summary="One user with quotas (overrides included), subscription and 30-day usage")
def get_user(admin: AdminPrincipal, db: Db, user_id: PathId) -> AdminUserDetail:
    return service.get_user(db, admin, user_id)


@router.post(
    "/{user_id}/suspend",
    summary="Suspend: the user's next request is 403 on every route",
    responses={
        409: {
            "model": ErrorEnvelope,
            "description": "CONFLICT: already suspended, or the admin is suspending themselves",
        }
    },
)
def suspend_user(admin: AdminPrincipal, db: Db, user_id: PathId, body: SuspendRequest) -> AdminUserDetail:
    return service.suspend_user(db, admin, user_id, body)


@router.post(
    "/{user_id}/unsuspend",
    summary="Lift a suspension",
    responses={409: {"model": ErrorEnvelope, "description": "CONFLICT: the user is not suspended"}},
)
def unsuspend_user(admin: AdminPrincipal, db: Db, user_id: PathId) -> AdminUserDetail:
    return service.unsuspend_user(db, admin, user_id)


@router.put("/{user_id}/quotas/{quota_key}", summary="Override one quota limit, optionally until a time")
def set_quota_override(
    admin: AdminPrincipal, db: Db, user_id: PathId, quota_key: QuotaKey, body: QuotaOverrideRequest
) -> AdminQuota:
    return service.set_quota_override(db, admin, user_id, quota_key, body)


@router.delete(
    "/{user_id}/quotas/{quota_key}", status_code=204, summary="Remove the override: back to the tier's limit"
)
def remove_quota_override(admin: AdminPrincipal, db: Db, user_id: PathId, quota_key: QuotaKey) -> Response:
    service.remove_quota_override(db, admin, user_id, quota_key)
    return Response(status_code=204)


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Erase the account as DELETE /user does; 404 unknown user, 409 yourself, 502 Razorpay failed",
    responses={
        404: {"model": ErrorEnvelope, "description": "NOT_FOUND: no such user"},
        409: {"model": ErrorEnvelope, "description": "CONFLICT: an admin cannot erase their own account here"},
        502: {
            "model": ErrorEnvelope,
            "description": "UPSTREAM_ERROR: Razorpay did not cancel the live subscription; nothing was erased",
        },
        503: {"model": ErrorEnvelope, "description": "UNAVAILABLE: billing or the database is unavailable"},
    },
)
def erase_user(admin: AdminPrincipal, db: Db, user_id: PathId) -> Response:
    service.erase_user(db, admin, user_id, get_razorpay_client)
    return Response(status_code=204)
