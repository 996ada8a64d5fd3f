"""Routes of the widget function: the script, and the public routes of a chatbot's visitors."""

from __future__ import annotations

import json
import time
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from oneai.chat import parts
from oneai.chat.entry import start_turn
from oneai.config import get_settings
from oneai.errors import InsufficientCreditsError, ProviderKeyRefusedError
from oneai.ratelimit import RateCheck, new_source_check
from oneai.web import Db
from oneai.web.bodies import json_body
from oneai.web.deps import RATE_CHECK_SCOPE_KEY
from oneai.web.errors import RETRY_AFTER_HEADER, ErrorEnvelope
from oneai.web.ids import PathId
from oneai.web.openrouter import OpenRouter
from oneai.web.streaming import EventStreamResponse, ReplyStreamResponse
from oneai.widget import service
from oneai.widget.chat import VISITOR_CHAT_BODY_OPENAPI, VisitorTurn, parse_visitor_body, public_refusal
from oneai.widget.models import (
    RatingAnswer,
    RatingRequest,
    SessionAnswer,
    SessionRequest,
    VisitorConversation,
    WidgetSettings,
)
from oneai.widget.script import Script
from widget.cors import CALL_SCOPE_KEY

router = APIRouter()
PUBLIC = "/public/chatbots/{public_id}"
# The script, read once per container (it ships in the function's artifact, beside the package).
SCRIPT = Script.of((FilePath(__file__).resolve().parent.parent / "widget.js").read_bytes())
PREFLIGHT_HEADERS = {
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "authorization, content-type",
    "access-control-max-age": "600",
}
PUBLIC_ERRORS: dict[int | str, dict[str, object]] = {
    403: {
        "model": ErrorEnvelope,
        "description": "FORBIDDEN: this origin is not allowed (no CORS header), or the assistant is unavailable",
    },
    404: {"model": ErrorEnvelope, "description": "no such chatbot (or conversation of this visitor)"},
    429: {"model": ErrorEnvelope, "description": "RATE_LIMITED: per source address or per visitor; Retry-After"},
}
TOKEN_ERRORS: dict[int | str, dict[str, object]] = {
    **PUBLIC_ERRORS,
    401: {
        "model": ErrorEnvelope,
        "description": "the session token is missing, forged, expired or of another origin",
    },
}


def source_address(request: Request) -> str | None:
    """The address the request came from. Under the Lambda Web Adapter the app's peer is the adapter
    itself (127.0.0.1), so the address is API Gateway's `identity.sourceIp` from the request context the
    adapter forwards in `x-amzn-request-context` (the adapter sets that header itself, replacing any the
    client sent; `make dev` does the same). Never X-Forwarded-For, which the client writes."""
    raw = request.headers.get("x-amzn-request-context")
    if raw:
        try:
            context = json.loads(raw)
        except (ValueError, RecursionError):
            context = None
        identity = context.get("identity") if isinstance(context, dict) else None
        source = identity.get("sourceIp") if isinstance(identity, dict) else None
        if isinstance(source, str) and source:
            return source
    return request.client.host if request.client else None


def _call(request: Request, public_id: str) -> service.PublicCall:
    host = source_address(request)
    check: RateCheck | None = request.scope.get(RATE_CHECK_SCOPE_KEY)
    if check is None:
        check = new_source_check(get_settings(), "widget", host)
        if check is not None:
            request.scope[RATE_CHECK_SCOPE_KEY] = check  # for the RateLimit headers
    call = service.PublicCall(
        public_id=public_id,
        origin=request.headers.get("origin"),
        source_check=check,
        source_host=host,
        user_agent=request.headers.get("user-agent"),
    )
    request.scope[CALL_SCOPE_KEY] = call
    return call


@router.get("/widget.js", include_in_schema=False)
def widget_script(
    v: Annotated[str | None, Query(max_length=64)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    headers = SCRIPT.headers(v)
    if SCRIPT.not_modified(if_none_match):
        return Response(status_code=304, headers={k: h for k, h in headers.items() if k != "content-type"})
    return Response(content=SCRIPT.body, headers=headers)


@router.get(PUBLIC, summary="The widget settings of an active chatbot", tags=["widget"], responses=PUBLIC_ERRORS)
def get_widget_settings(public_id: str, request: Request, db: Db) -> WidgetSettings:
    return service.widget_settings(db, _call(request, public_id))


@router.post(
    f"{PUBLIC}/sessions",
    summary="Open a visitor session (a short-lived token bound to the chatbot, the origin and the visitor)",
    tags=["widget"],
    responses=PUBLIC_ERRORS,
)
def open_session(public_id: str, body: SessionRequest, request: Request, db: Db) -> SessionAnswer:
    return service.open_session(db, get_settings(), _call(request, public_id), body)


@router.get(
    f"{PUBLIC}/conversations/{{conversation_id}}/messages",
    summary="The visitor's own conversation, to show again after a reload",
    tags=["widget"],
    responses=TOKEN_ERRORS,
)
def conversation_messages(
    public_id: str,
    conversation_id: PathId,
    request: Request,
    db: Db,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> VisitorConversation:
    call = _call(request, public_id)
    return service.conversation_messages(db, get_settings(), call, authorization, conversation_id)


@router.post(
    f"{PUBLIC}/chat",
    summary="The visitor's message, and the chatbot's reply streamed (AI SDK UI message stream v1, as /chat/stream)",
    tags=["widget"],
    response_class=EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the reply as stream parts"},
        **TOKEN_ERRORS,
        402: {
            "model": ErrorEnvelope,
            "description": "INSUFFICIENT_CREDITS: the workspace's credits cannot cover it (no details: they are the workspace's)",
        },
        404: {"model": ErrorEnvelope, "description": "no such chatbot, or conversation of this visitor"},
        413: {"model": ErrorEnvelope, "description": "PAYLOAD_TOO_LARGE: the message is over the limit"},
        424: {
            "model": ErrorEnvelope,
            "description": "PROVIDER_KEY_REFUSED: the workspace's provider key (not named, no details)",
        },
        429: {
            "model": ErrorEnvelope,
            "description": "RATE_LIMITED: per source address, per visitor, or the chatbot's messages of the day",
            "headers": RETRY_AFTER_HEADER,
        },
        502: {"model": ErrorEnvelope, "description": "the model provider failed before the first token"},
        504: {
            "model": ErrorEnvelope,
            "description": "UPSTREAM_TIMEOUT: no first token in time; nothing was charged",
        },
    },
    openapi_extra=VISITOR_CHAT_BODY_OPENAPI,
)
async def visitor_chat(
    public_id: str,
    request: Request,
    db: Db,
    client: OpenRouter,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventStreamResponse:
    received_at = time.monotonic()  # the reply's timings count from here
    call = _call(request, public_id)
    body = await json_body(request)
    chatbot, session = await run_in_threadpool(service.admit_visitor, db, get_settings(), call, authorization)
    visitor = VisitorTurn(call=call, chatbot=chatbot, session=session, received_at=received_at)
    try:
        reply = await start_turn(db, client, visitor.principal, parse_visitor_body(body), kind=visitor)
    except (InsufficientCreditsError, ProviderKeyRefusedError) as exc:  # the workspace's, not the visitor's
        raise public_refusal(exc) from None
    return ReplyStreamResponse(reply, headers=parts.STREAM_HEADERS)


@router.post(
    f"{PUBLIC}/conversations/{{conversation_id}}/rating",
    summary="Rate the visitor's conversation, 1 to 5 (again: the last rating counts)",
    tags=["widget"],
    responses=TOKEN_ERRORS,
)
def rate_conversation(
    public_id: str,
    conversation_id: PathId,
    body: RatingRequest,
    request: Request,
    db: Db,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> RatingAnswer:
    call = _call(request, public_id)
    return service.rate_conversation(db, get_settings(), call, authorization, conversation_id, body=body)


def _preflight(public_id: str, request: Request, db: Db) -> Response:
    call = _call(request, public_id)
    service.preflight(db, call)
    return Response(status_code=204, headers=PREFLIGHT_HEADERS)


# CORS preflights: answered here, per chatbot (API Gateway's own OPTIONS mock would allow any origin).
for _path in (
    PUBLIC,
    f"{PUBLIC}/sessions",
    f"{PUBLIC}/chat",
    f"{PUBLIC}/conversations/{{conversation_id}}/messages",
    f"{PUBLIC}/conversations/{{conversation_id}}/rating",
):
    router.add_api_route(_path, _preflight, methods=["OPTIONS"], include_in_schema=False, status_code=204)


@router.get("/widget/health", include_in_schema=False)
async def health() -> dict[str, str]:
    """Readiness check of the Lambda Web Adapter (no database)."""
    return {"status": "ok"}
