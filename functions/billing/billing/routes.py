"""Routes of the billing function: each calls a service in `oneai.billing.service`, which opens its own
transactions (Razorpay is called between them, never inside one).

`GET /subscription/plans` is public (no token): a pricing page shows it before anyone signs in, and it
holds nothing but configuration. Every other route needs the caller's token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from oneai.billing import service
from oneai.billing.models import (
    CancelRequest,
    CancelResult,
    CheckoutSession,
    CreateSubscriptionRequest,
    CurrentSubscription,
    InvoiceList,
    PaymentMethodPortal,
    PlanList,
    UpdateRequest,
    UpdateResult,
    VerifyRequest,
    VerifyResult,
)
from oneai.billing.razorpay_client import RazorpayClient, get_razorpay_client
from oneai.config import get_settings
from oneai.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope

# Resolved after the principal (declared after it), so a request without a token is a 401 even when
# billing is not configured; without RAZORPAY_KEY_ID / RAZORPAY_KEY_SECRET it is a 503.
Razorpay = Annotated[RazorpayClient, Depends(get_razorpay_client)]


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "BAD_REQUEST: the Checkout signature does not match your subscription",
        404: "NOT_FOUND: you have no live subscription",
        409: "CONFLICT: you already have a live subscription, or it already is on that tier",
        502: "UPSTREAM_ERROR: Razorpay failed or timed out; nothing was recorded",
        503: "UNAVAILABLE: billing is not configured, or the database is down",
    }
    return {status: {"model": ErrorEnvelope, "description": described[status]} for status in statuses}


plans = APIRouter(prefix="/subscription", tags=["plans"])
subscription = APIRouter(prefix="/subscription", tags=["subscription"])


@plans.get("/plans", summary="Every tier with price, currency, quotas and features (public, no token)")
def list_plans() -> PlanList:
    return service.available_plans(get_settings())


@subscription.post(
    "/create",
    summary="Create a Razorpay subscription for a tier; answers what Razorpay Checkout needs",
    responses=_responses(409, 502, 503),
)
def create_subscription(
    principal: CurrentPrincipal, db: Db, razorpay: Razorpay, body: CreateSubscriptionRequest
) -> CheckoutSession:
    return service.create_subscription(db, principal, body, razorpay)


@subscription.post(
    "/verify",
    summary="Check Checkout's signature against your subscription (provisional: webhooks grant the tier)",
    responses=_responses(400, 503),
)
def verify_subscription(
    principal: CurrentPrincipal, db: Db, razorpay: Razorpay, body: VerifyRequest
) -> VerifyResult:
    return service.verify_checkout(db, principal, body, razorpay)


@subscription.post(
    "/cancel",
    summary="Cancel your subscription at the end of the paid cycle (default) or now",
    responses=_responses(404, 502, 503),
)
def cancel_subscription(
    principal: CurrentPrincipal,
    db: Db,
    razorpay: Razorpay,
    body: Annotated[CancelRequest | None, Body(description="optional; at_cycle_end defaults to true")] = None,
) -> CancelResult:
    return service.cancel_subscription(db, principal, body or CancelRequest(), razorpay)


@subscription.post(
    "/update",
    summary="Move to another paid tier: the plan is edited at Razorpay, or the subscription replaced",
    responses=_responses(404, 409, 502, 503),
)
def update_subscription(
    principal: CurrentPrincipal, db: Db, razorpay: Razorpay, body: UpdateRequest
) -> UpdateResult:
    return service.update_subscription(db, principal, body, razorpay)


@subscription.get(
    "/invoices", summary="Razorpay's invoices of your subscriptions, newest first", responses=_responses(502, 503)
)
def list_invoices(
    principal: CurrentPrincipal,
    db: Db,
    razorpay: Razorpay,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
) -> InvoiceList:
    return service.invoices(db, principal, razorpay, PageRequest(limit=limit, cursor=cursor))


@subscription.get(
    "/portal",
    summary="Razorpay's page where you change the card or mandate of your live subscription",
    responses=_responses(404, 502, 503),
)
def get_payment_method_portal(principal: CurrentPrincipal, db: Db, razorpay: Razorpay) -> PaymentMethodPortal:
    return service.payment_method_portal(db, principal, razorpay)


@subscription.get(
    "",
    summary="The subscription in force (or null), a plan change awaiting activation, and your tier history",
)
def get_subscription(principal: CurrentPrincipal, db: Db) -> CurrentSubscription:
    return service.current_subscription(db, principal)
