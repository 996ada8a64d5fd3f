"""Routes of the chat_stream function: the streamed reply, its resume and stop, and the model list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from oneai.chat import parts, resumable
from oneai.chat.entry import start_turn
from oneai.chat.offered_models import ModelList, listings
from oneai.chat.requests import CHAT_BODY_OPENAPI, parse_chat_body
from oneai.db.users import caller_tier
from oneai.openrouter.errors import OpenRouterError
from oneai.web import ChatPrincipal, CurrentPrincipal, Db
from oneai.web.bodies import json_body
from oneai.web.errors import RETRY_AFTER_HEADER, ErrorEnvelope
from oneai.web.openrouter import OpenRouter
from oneai.web.streaming import EventStreamResponse, ReplyStreamResponse

router = APIRouter(prefix="/chat", tags=["chat"])


@router.post(
    "/stream",
    summary="Send, edit or regenerate, and stream the reply (AI SDK UI message stream v1)",
    response_class=EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the reply as stream parts"},
        402: {
            "model": ErrorEnvelope,
            "description": "PLAN_LIMIT: the chatbot's workspace has used its messages of the day",
        },
        403: {
            "model": ErrorEnvelope,
            "description": "FORBIDDEN (a model outside your tier), CHATBOT_DISABLED or WORKSPACE_SUSPENDED",
        },
        404: {"model": ErrorEnvelope, "description": "no such conversation, message or chatbot of yours"},
        413: {
            "model": ErrorEnvelope,
            "description": "PAYLOAD_TOO_LARGE: the message is over the limit or the window",
        },
        429: {
            "model": ErrorEnvelope,
            "description": "QUOTA_EXCEEDED, or RATE_LIMITED (the chat bucket)",
            "headers": RETRY_AFTER_HEADER,
        },
        502: {"model": ErrorEnvelope, "description": "the model provider failed before the first token"},
        504: {
            "model": ErrorEnvelope,
            "description": "UPSTREAM_TIMEOUT: no first token in time; nothing was charged",
        },
    },
    openapi_extra=CHAT_BODY_OPENAPI,
)
async def chat_stream(
    principal: ChatPrincipal,
    db: Db,
    client: OpenRouter,
    request: Request,
) -> EventStreamResponse:
    # The turn's steps are `oneai.chat.entry.start_turn`'s (no docstring here: it would be the OpenAPI text).
    reply = await start_turn(db, client, principal, parse_chat_body(await json_body(request)))
    return ReplyStreamResponse(reply, headers=parts.STREAM_HEADERS)


@router.get(
    "/stream/{conversation_id}/stream",
    summary="Resume the reply being generated in a conversation (the AI SDK's reconnect address)",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the reply from its `start`, then live"},
        204: {"description": "no reply is being generated in this conversation"},
        404: {"model": ErrorEnvelope, "description": "no such conversation of yours"},
    },
)
async def resume_chat_stream(
    conversation_id: Annotated[str, Path(min_length=1, max_length=128, description="id or AI SDK chat id")],
    principal: CurrentPrincipal,
    db: Db,
) -> Response:
    reply_id = await run_in_threadpool(resumable.active_reply, db, principal, conversation_id)
    if reply_id is None:
        return Response(status_code=204)
    return EventStreamResponse(resumable.follow(db, principal, reply_id), headers=parts.STREAM_HEADERS)


@router.post(
    "/stream/{conversation_id}/stop",
    summary="Stop the reply being generated in a conversation; its text so far is kept as incomplete",
    status_code=204,
    response_class=Response,
    responses={404: {"model": ErrorEnvelope, "description": "no such conversation of yours"}},
)
async def stop_chat_stream(
    conversation_id: Annotated[str, Path(min_length=1, max_length=128, description="id or AI SDK chat id")],
    principal: CurrentPrincipal,
    db: Db,
) -> Response:
    await run_in_threadpool(resumable.request_stop, db, principal, conversation_id)
    return Response(status_code=204)


@router.get("/models", summary="The offered models, and whether your tier may use each")
async def chat_models(principal: CurrentPrincipal, db: Db, client: OpenRouter) -> ModelList:
    def tier_of_caller() -> str:
        with db.user_transaction(principal) as conn:
            return caller_tier(conn)

    tier = await run_in_threadpool(tier_of_caller)
    try:
        upstream = await client.list_models()
    except OpenRouterError as exc:
        raise exc.to_api_error() from None
    return ModelList(items=listings(upstream, tier))


@router.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    """Readiness check of the Lambda Web Adapter (no auth, no database)."""
    return {"status": "ok"}
