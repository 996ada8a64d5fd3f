"""Routes of the account function: each opens the caller's transaction and calls a service."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from oneai.account import service
from oneai.account.models import (
    Profile,
    ProfileUpdate,
    QuotaCheckRequest,
    QuotaCheckResult,
    QuotaOverview,
    UsageQuery,
    UsageReport,
)
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import RETRY_AFTER_HEADER, ErrorEnvelope

QUOTA_EXCEEDED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorEnvelope,
        "description": "QUOTA_EXCEEDED: details quota_key, used, limit, resets_at, tier",
        "headers": RETRY_AFTER_HEADER,
    }
}

quota = APIRouter(prefix="/user", tags=["quota and usage"])
profile = APIRouter(prefix="/user", tags=["profile"])


@quota.get("/quota", summary="Your subscription and every quota as it stands now")
def get_quota(principal: CurrentPrincipal, db: Db) -> QuotaOverview:
    with db.user_transaction(principal) as conn:
        return service.quota_overview(conn)


@quota.post(
    "/quota/check", summary="Would the quota admit these units now? (reserves nothing)", responses=QUOTA_EXCEEDED
)
def check_quota(principal: CurrentPrincipal, db: Db, body: QuotaCheckRequest) -> QuotaCheckResult:
    with db.user_transaction(principal) as conn:
        return service.check_quota(conn, body)


@quota.get(
    "/usage",
    summary="Messages, tokens and cost per model or per UTC day (JSON, or CSV with format=csv)",
    response_model=UsageReport,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_usage(
    principal: CurrentPrincipal, db: Db, query: Annotated[UsageQuery, Query()]
) -> UsageReport | Response:
    with db.user_transaction(principal) as conn:
        report = service.usage_report(conn, query)
    if query.format == "json":
        return report
    document = service.usage_csv(report)
    disposition = f"attachment; filename=\"{document.filename}\"; filename*=UTF-8''{quote(document.filename)}"
    return Response(document.body, media_type=document.media_type, headers={"content-disposition": disposition})


@profile.get("/profile", summary="Your profile, preferences and subscription")
def get_profile(principal: CurrentPrincipal, db: Db) -> Profile:
    with db.user_transaction(principal) as conn:
        return service.get_profile(conn)


@profile.patch("/profile", summary="Change your name, picture or preferences (merged into the stored ones)")
def update_profile(principal: CurrentPrincipal, db: Db, body: ProfileUpdate) -> Profile:
    with db.user_transaction(principal) as conn:
        return service.update_profile(conn, body)
