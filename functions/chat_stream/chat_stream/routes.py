"""Routes of the chat_stream function: the streamed reply and the model list."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from chat_stream.deps import OpenRouter
from oneai.chat import parts
from oneai.chat.context import estimate_tokens, reply_budget
from oneai.chat.offered_models import DEFAULT_CONTEXT_LENGTH, ModelList, listings
from oneai.chat.relay import ChatRelay
from oneai.chat.requests import CHAT_BODY_OPENAPI, parse_chat_body
from oneai.chat.turn import default_model_for, prepare_turn
from oneai.chat.turn_images import keep_attached, refuse_images_the_model_cannot_read, store_inline_images
from oneai.db.users import caller_tier
from oneai.errors import PayloadTooLargeError
from oneai.events import get_publisher
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
    if turn.model is None:
        turn = turn.model_copy(update={"model": await run_in_threadpool(default_model_for, db, principal)})
    model = await _model_or_none(client, turn.model_id)
    if turn.content is not None:
        window = (model.context_length if model else None) or DEFAULT_CONTEXT_LENGTH
        if estimate_tokens(turn.content) > window - reply_budget(window):
            raise PayloadTooLargeError("The message is too long for this model's context window")
    refuse_images_the_model_cannot_read(turn, model)
    inline = await run_in_threadpool(store_inline_images, principal.user_id, turn.inline_images)
    prepared = await run_in_threadpool(partial(prepare_turn, inline=inline), db, principal, turn)
    await run_in_threadpool(keep_attached, prepared.attachment_keys)
    if prepared.reservation.warnings_crossed:
        await run_in_threadpool(announce_warnings, get_publisher(), principal.user_id, prepared.reservation)
    relay = ChatRelay(db, client, prepared, model=model, title_model=db.settings.title_model)
    await relay.open()
    return EventStreamResponse(relay.events(), headers=parts.STREAM_HEADERS)


async def _model_or_none(client: OpenRouter, model_id: str) -> Any:
    # The catalog only sizes the context; if OpenRouter's list is unreachable the default window is used.
    try:
        return await client.get_model(model_id)
    except OpenRouterError:
        return None


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
