"""Routes of the credits function: each opens the caller's transaction and calls `oneai.credits.service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from oneai.billing.razorpay_client import get_razorpay_client
from oneai.credits import service
from oneai.credits.models import (
    Credits,
    CreditsCheckout,
    CreditTransaction,
    CreditUsage,
    PurchaseRequest,
    TransactionQuery,
    UsageQuery,
)
from oneai.pagination import Page
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

router = APIRouter(prefix="/workspaces/{workspace_id}/credits", tags=["credits"])

Responses = dict[int | str, dict[str, Any]]


def refused(status_code: int, description: str) -> Responses:
    return {status_code: {"model": ErrorEnvelope, "description": description}}


@router.get("", summary="The workspace's balance (members)")
def get_credits(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> Credits:
    with db.user_transaction(principal) as conn:
        return service.get_credits(conn, workspace_id)


@router.post(
    "/purchase",
    summary="Buy credits (owners): a Razorpay Order and what Checkout needs",
    responses={
        **refused(422, "VALIDATION_ERROR: the amount is not a decimal string, or outside the allowed range"),
        **refused(502, "UPSTREAM_ERROR: Razorpay failed"),
    },
)
def purchase_credits(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: PurchaseRequest
) -> CreditsCheckout:
    return service.purchase(db, principal, get_razorpay_client, workspace_id, body.amount)


@router.get("/transactions", summary="The ledger, newest first (admins and owners)")
def list_transactions(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, query: Annotated[TransactionQuery, Query()]
) -> Page[CreditTransaction]:
    with db.user_transaction(principal) as conn:
        return service.list_transactions(conn, workspace_id, query)


@router.get(
    "/usage",
    summary="Usage paid from the workspace, per chatbot, model, UTC day or provider key (JSON, or CSV with Accept: text/csv)",
    response_model=CreditUsage,
    responses={200: {"content": {"text/csv": {}}}},
)
def credit_usage(
    principal: CurrentPrincipal,
    db: Db,
    workspace_id: PathId,
    query: Annotated[UsageQuery, Query()],
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> CreditUsage | Response:
    with db.user_transaction(principal) as conn:
        report = service.usage(conn, workspace_id, query)
    if accept is None or "text/csv" not in accept.lower():
        return report
    filename = f"credits-usage-{workspace_id}-{query.group_by}.csv"
    return Response(
        service.usage_csv(report).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
