"""Routes of the account function: each opens the caller's transaction and calls a service."""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

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
from oneai.notifications import unsubscribe
from oneai.notifications.render import PREFERENCE_LABELS
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope

QUOTA_EXCEEDED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorEnvelope, "description": "QUOTA_EXCEEDED: details quota_key, used, limit, resets_at, tier"}
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


# ---------------------------------------------------------------- notifications: one-click unsubscribe
# Public (no login: the signed token is the authority). GET only shows a confirmation with a button, because
# mail scanners prefetch links; the POST (the button, or a mail client's RFC 8058 one-click POST with the
# body `List-Unsubscribe=One-Click`, which is not read) turns the switch off.
notifications = APIRouter(prefix="/notifications", tags=["notifications"])
LINK_DOC = "the signed token of the email's unsubscribe link"
HTML_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex">'
    "<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
)
HTML_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "a page for the person who clicked"},
    400: {"model": ErrorEnvelope, "description": "BAD_REQUEST: the link is not valid"},
}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        HTML_PAGE.format(title=html.escape(title), body=body), headers={"cache-control": "no-store"}
    )


@notifications.get(
    "/unsubscribe",
    summary="The unsubscribe link's confirmation page (changes nothing)",
    response_class=HTMLResponse,
    responses=HTML_RESPONSE,
)
def unsubscribe_page(db: Db, token: Annotated[str, Query(max_length=200, description=LINK_DOC)]) -> HTMLResponse:
    label = PREFERENCE_LABELS[unsubscribe.switch_of(db.settings, token)]
    button = (
        f'<form method="post" action="?{html.escape(urlencode({"token": token}))}">'
        f'<p>Stop {html.escape(label)} emails from OneAI?</p><button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", button)


@notifications.post(
    "/unsubscribe",
    summary="One-click unsubscribe (RFC 8058): turn the link's kind of email off",
    response_class=HTMLResponse,
    responses=HTML_RESPONSE,
)
def unsubscribe_now(db: Db, token: Annotated[str, Query(max_length=200, description=LINK_DOC)]) -> HTMLResponse:
    label = PREFERENCE_LABELS[unsubscribe.unsubscribe(db, token)]
    note = "You can turn them on again in your profile's notification preferences."
    return _page("Unsubscribed", f"<p>You will get no more {html.escape(label)} emails. {note}</p>")
