"""Routes of the account function: each opens the caller's transaction and calls a service."""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from oneai import api_keys as api_key_service
from oneai.account import service
from oneai.account.data_export import account_export_file
from oneai.account.erasure import erase_account
from oneai.account.models import (
    Profile,
    ProfileUpdate,
    QuotaCheckRequest,
    QuotaCheckResult,
    QuotaOverview,
    UsageQuery,
    UsageReport,
)
from oneai.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyList
from oneai.notifications import unsubscribe
from oneai.notifications.render import PREFERENCE_LABELS
from oneai.web import CurrentPrincipal, Db
from oneai.web.app import ERROR_RESPONSES
from oneai.web.errors import RETRY_AFTER_HEADER, ErrorEnvelope
from oneai.web.ids import PathId

QUOTA_EXCEEDED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorEnvelope,
        "description": "QUOTA_EXCEEDED: details quota_key, used, limit, resets_at, tier",
        "headers": RETRY_AFTER_HEADER,
    }
}

quota = APIRouter(prefix="/user", tags=["quota and usage"])
profile = APIRouter(prefix="/user", tags=["profile"])
account = APIRouter(prefix="/user", tags=["account"])


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


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


@account.delete(
    "",
    status_code=204,
    summary="Erase your account: subscription cancelled at Razorpay first, then every row of yours",
    responses={
        502: {
            "model": ErrorEnvelope,
            "description": "UPSTREAM_ERROR: Razorpay did not cancel; nothing was erased",
        },
        503: {"model": ErrorEnvelope, "description": "UNAVAILABLE: billing or the database is unavailable"},
    },
)
def delete_account(principal: CurrentPrincipal, db: Db) -> Response:
    erase_account(db, principal.user_id)
    return Response(status_code=204)


@account.get(
    "/export",
    summary="Everything OneAI holds about you, as one JSON download",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "the export, as an attachment"}},
)
def export_account(principal: CurrentPrincipal, db: Db) -> Response:
    with db.user_transaction(principal) as conn:
        document = account_export_file(conn, principal.user_id)
    return Response(
        document.body,
        media_type=document.media_type,
        headers={"content-disposition": _attachment(document.filename)},
    )


api_keys = APIRouter(prefix="/user", tags=["API keys"])


@api_keys.post(
    "/api-keys",
    status_code=201,
    summary="Create an API key for the OpenAI-compatible API (/v1); the key is shown only in this answer",
    responses={409: {"model": ErrorEnvelope, "description": "CONFLICT: too many keys that work"}},
)
def create_api_key(principal: CurrentPrincipal, db: Db, body: ApiKeyCreate) -> ApiKeyCreated:
    with db.user_transaction(principal) as conn:
        return api_key_service.create_key(conn, body)


@api_keys.get("/api-keys", summary="Your API keys, newest first (never the keys themselves)")
def list_api_keys(principal: CurrentPrincipal, db: Db) -> ApiKeyList:
    with db.user_transaction(principal) as conn:
        return api_key_service.list_keys(conn)


@api_keys.delete("/api-keys/{id}", status_code=204, summary="Revoke an API key: it stops working at once")
def revoke_api_key(principal: CurrentPrincipal, db: Db, id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        api_key_service.revoke_key(conn, id)
    return Response(status_code=204)


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
# Errors stay JSON in the envelope on these HTML routes. FastAPI files a `model` response under the route's
# own media type (text/html), so each error status, the app-wide ones included, names its JSON schema here.
ENVELOPE_JSON: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
HTML_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "a page for the person who clicked"},
    **{
        status: {"content": ENVELOPE_JSON, "description": response["description"]}
        for status, response in {
            **ERROR_RESPONSES,
            400: {"description": "BAD_REQUEST: the link is not valid"},
        }.items()
    },
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
