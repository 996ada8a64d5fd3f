"""Subscriptions: list by status, and sync one from Razorpay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from oneai.admin import service
from oneai.admin.models import AdminSubscription, SubscriptionListQuery, SyncResult
from oneai.billing.razorpay_client import get_razorpay_client
from oneai.pagination import Page
from oneai.web import AdminPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

UPSTREAM: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorEnvelope, "description": "Razorpay failed; nothing was written"}
}

router = APIRouter(prefix="/admin/subscriptions", tags=["subscriptions"])


@router.get("", summary="Subscriptions, newest first; filter by status")
def list_subscriptions(
    admin: AdminPrincipal, db: Db, query: Annotated[SubscriptionListQuery, Query()]
) -> Page[AdminSubscription]:
    return service.list_subscriptions(db, admin, query)


@router.post(
    "/{subscription_id}/sync",
    summary="Fetch the subscription from Razorpay and apply it as the webhooks would",
    responses=UPSTREAM,
)
def sync_subscription(admin: AdminPrincipal, db: Db, subscription_id: PathId) -> SyncResult:
    return service.sync_subscription(db, admin, subscription_id, get_razorpay_client)
