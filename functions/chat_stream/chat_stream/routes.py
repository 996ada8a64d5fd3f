"""Routes of the chat_stream function: the streamed reply, its resume and stop, and the model list."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from chat_stream.deps import OpenRouter
from oneai.chat import parts, resumable
from oneai.chat.context import estimate_tokens, reply_budget
from oneai.chat.offered_models import DEFAULT_CONTEXT_LENGTH, OFFERED_MODELS, ModelList, listings
from oneai.chat.relay import ChatRelay
from oneai.chat.requests import CHAT_BODY_OPENAPI, parse_chat_body
from oneai.chat.resumable import LiveReply, ReplyStreamResponse
from oneai.chat.turn import MESSAGE_TOO_LONG, default_model_for, prepare_turn
from oneai.chat.turn_images import keep_attached, refuse_images_the_model_cannot_read, store_inline_images
from oneai.db.users import caller_tier
from oneai.errors import PayloadTooLargeError
from oneai.events import get_publisher
from oneai.openrouter.catalog import OpenRouterModel
from oneai.openrouter.errors import OpenRouterError
from oneai.quota.warnings import announce_warnings
from oneai.web import ChatPrincipal, CurrentPrincipal, Db
from oneai.web.bodies import json_body
from oneai.web.errors import RETRY_AFTER_HEADER, ErrorEnvelope
from oneai.web.streaming import EventStreamResponse

router = APIRouter(prefix="/chat", tags=["chat"])


@router.post(
    "/stream",
    summary="Send, edit or regenerate, and stream the reply (AI SDK UI message stream v1)",
    response_class=EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the reply as stream parts"},
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
    turn = parse_chat_body(await json_body(request))
    # The catalog never waits for OpenRouter: the cached entries (a refresh runs in the background), else
    # the default window. The message must fit the model's window: a named model is checked here, the
    # caller's default model (resolved by the prepare call) there, with the models it does not fit.
    if turn.model is None and turn.has_images:  # the model must read the images: it is known first
        turn = turn.model_copy(update={"model": await run_in_threadpool(default_model_for, db, principal)})
    if (
        turn.model is not None
        and turn.content is not None
        and not _fits(turn.content, client.known_model(turn.model))
    ):
        raise PayloadTooLargeError(MESSAGE_TOO_LONG)
    too_long_for = frozenset()
    if turn.model is None and turn.content is not None:
        content = turn.content
        too_long_for = frozenset(
            m.model_id for m in OFFERED_MODELS if not _fits(content, client.known_model(m.model_id))
        )
    if turn.model is not None:
        refuse_images_the_model_cannot_read(turn, client.known_model(turn.model))
    inline = await run_in_threadpool(store_inline_images, principal.user_id, turn.inline_images)
    prepared = await run_in_threadpool(
        partial(prepare_turn, too_long_for=too_long_for, inline=inline), db, principal, turn
    )
    await run_in_threadpool(keep_attached, prepared.attachment_keys)
    model = client.known_model(prepared.turn.model_id)
    relay = ChatRelay(db, client, prepared, model=model, title_model=db.settings.title_model)
    announcing = None
    if prepared.reservation.warnings_crossed:  # the quota warning goes out while the model is asked
        announcing = asyncio.create_task(
            run_in_threadpool(announce_warnings, get_publisher(), principal.user_id, prepared.reservation)
        )
    try:
        await relay.open()
    finally:
        if announcing is not None:
            await announcing
    # From here the reply is generated to its end whoever reads it (oneai.chat.resumable).
    reply = LiveReply(
        db,
        relay,
        principal,
        reply_id=prepared.reply_id,
        conversation_id=prepared.conversation.id,
        persist=db.settings.reply_persistence,
        time_limit=db.settings.reply_time_limit_seconds,
    )
    reply.start()
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


def _fits(content: str, model: OpenRouterModel | None) -> bool:
    window = (model.context_length if model else None) or DEFAULT_CONTEXT_LENGTH
    return estimate_tokens(content) <= window - reply_budget(window)


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
