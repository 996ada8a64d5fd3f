"""The OpenAI-compatible chat completion (`POST /v1/chat/completions`): the caller's tier, quota and rate
limit as in the web chat, with OpenAI's request and reply shapes.

Stateless, like OpenAI's API: the caller sends the whole conversation each time and nothing of it is
stored (no conversation, no messages). What is kept is the usage record, tagged with the API key, and
the quota it counts against. The quota is reserved, settled and refunded by the same `oneai.quota`
service as a chat turn: reserve before the model is called, refund when it fails before its first token,
settle with the usage record when the reply ends (completely, or cut off: then `incomplete`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from oneai.auth import Principal
from oneai.chat.offered_models import OFFERED_MODELS, OfferedModel, offered_model
from oneai.chat.openai_messages import check_messages
from oneai.db import api_keys as key_rows
from oneai.db.connection import Database
from oneai.db.users import caller_tier
from oneai.errors import NotFoundError, OneAIError
from oneai.logging import logger
from oneai.openrouter.catalog import cost_of
from oneai.openrouter.client import ChatStream, OpenRouterClient
from oneai.openrouter.errors import OpenRouterError
from oneai.openrouter.types import KeepAlive, RawChunk, StreamDone, StreamEvent, StreamResult, Usage
from oneai.quota import service as quota
from oneai.quota.service import Reservation

# OpenAI request parameters passed through to OpenRouter as given (those it supports); anything else
# the SDK may send is ignored.
PASSTHROUGH_PARAMETERS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "parallel_tool_calls",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
    }
)
SSE_DONE = b"data: [DONE]\n\n"
ReplyStatus = Literal["complete", "incomplete", "error"]
SSE_KEEP_ALIVE = b": keep-alive\n\n"


class ModelNotFoundError(NotFoundError):
    """A model OneAI does not offer (OpenAI's 404 `model_not_found`)."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class CompletionRequest(BaseModel):
    """OpenAI's chat completion request; the messages go to the model as sent."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def passthrough(self) -> dict[str, Any]:
        extra = self.model_extra or {}
        return {k: v for k, v in extra.items() if k in PASSTHROUGH_PARAMETERS and v is not None}


@dataclass(frozen=True)
class PreparedCompletion:
    principal: Principal
    request: CompletionRequest
    offered: OfferedModel
    reservation: Reservation
    completion_id: str
    created: int

    @property
    def api_key_id(self) -> uuid.UUID:
        assert self.principal.api_key_id is not None
        return self.principal.api_key_id


def model_listing(tier: str) -> dict[str, Any]:
    """`GET /v1/models`: the offered models the tier may use, in OpenAI's list shape."""
    return {
        "object": "list",
        "data": [
            {"id": m.model_id, "object": "model", "created": 0, "owned_by": m.model_id.split("/", 1)[0]}
            for m in OFFERED_MODELS
            if tier in m.tiers
        ],
    }


def prepare_completion(db: Database, principal: Principal, request: CompletionRequest) -> PreparedCompletion:
    """The messages as OpenAI checks them, then one transaction as the key's user (it also takes the
    request's `chat` rate token): the model against the tier, then one unit of its quota. A request OpenAI
    would refuse is refused before that transaction: it reserves nothing."""
    check_messages(request.messages)
    with db.user_transaction(principal) as conn:
        if not any(m.model_id == request.model for m in OFFERED_MODELS):
            raise ModelNotFoundError(
                f"The model `{request.model}` does not exist", details={"model": request.model}
            )
        offered = offered_model(request.model, caller_tier(conn))
        reservation = quota.reserve(conn, offered.quota_key)
    return PreparedCompletion(
        principal=principal,
        request=request,
        offered=offered,
        reservation=reservation,
        completion_id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
    )


def refund_completion(db: Database, prepared: PreparedCompletion) -> None:
    """The model failed before its first token: the unit goes back."""
    with db.user_transaction(prepared.principal) as conn:
        quota.refund(conn, prepared.reservation)


def finish_completion(
    db: Database,
    prepared: PreparedCompletion,
    result: StreamResult,
    cost: Decimal,
    status: ReplyStatus,
) -> None:
    """Record the usage (tagged with the key) and settle the unit, in one transaction. A reply that reached
    the caller (whole, or the streamed part of it) keeps its unit; an `error` (a whole-reply request whose
    model failed midway, so the caller got nothing) gives it back, its usage still recorded."""
    usage = result.usage
    with db.user_transaction(prepared.principal) as conn:
        key_rows.record_api_usage(
            conn,
            api_key_id=prepared.api_key_id,
            quota_key=prepared.offered.quota_key,
            requested_model=prepared.request.model,
            model_id=result.billed_model,
            generation_id=result.generation_id,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost=cost,
            status=status,
        )
        quota.settle(conn, prepared.reservation, 0 if status == "error" else 1)


def openai_usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class CompletionRelay:
    """One completion from OpenRouter to the client. `open()` waits for the first chunk, so a failure up
    to then refunds the unit and is still a plain error answer; after that the reply is settled however
    it ends (finished, failed upstream, or the client went away)."""

    def __init__(self, db: Database, client: OpenRouterClient, prepared: PreparedCompletion) -> None:
        self._db = db
        self._client = client
        self._prepared = prepared
        self._stream: ChatStream | None = None
        self._first: StreamEvent | None = None
        self._settled = False

    def _open_stream(self) -> ChatStream:
        prepared = self._prepared
        return self._client.stream_chat(
            prepared.request.model,
            prepared.request.messages,
            fallback_models=prepared.offered.fallbacks,
            user=str(prepared.principal.user_id),
            extra=prepared.request.passthrough(),
            raw=True,
        )

    async def open(self) -> None:
        self._stream = self._open_stream()
        try:
            async for event in self._stream:
                if not isinstance(event, KeepAlive):
                    self._first = event
                    return
            raise OneAIError("The model stream ended without a reply")
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
                await anyio.to_thread.run_sync(refund_completion, self._db, self._prepared)
            if isinstance(exc, OpenRouterError):
                raise exc.to_api_error() from None
            raise

    async def complete(self) -> dict[str, Any]:
        """The whole reply as one `chat.completion` (a non-streaming request)."""
        choices: dict[int, dict[str, Any]] = {}
        async with aclosing(self._chunks(failed_status="error")) as chunks:
            async for payload in chunks:
                for choice in payload.get("choices") or []:
                    _merge_choice(choices.setdefault(int(choice.get("index", 0)), _empty_choice(choice)), choice)
        assert self._stream is not None
        result = self._stream.result or self._stream.partial
        prepared = self._prepared
        return {
            "id": prepared.completion_id,
            "object": "chat.completion",
            "created": prepared.created,
            "model": result.billed_model,
            "choices": [choices[i] for i in sorted(choices)],
            "usage": openai_usage(result.usage),
        }

    async def events(self) -> AsyncIterator[bytes]:
        """The reply as OpenAI's `chat.completion.chunk` server-sent events, then `data: [DONE]`."""
        try:
            # Closed with this generator (a client that goes away): the reply is settled as incomplete.
            async with aclosing(self._chunks(keep_alives=True)) as chunks:
                async for payload in chunks:
                    yield _sse(payload) if payload else SSE_KEEP_ALIVE
        except OneAIError as exc:
            yield _sse(
                {
                    "error": {
                        "message": exc.message,
                        "type": "server_error",
                        "param": None,
                        "code": exc.code.lower(),
                    }
                }
            )
            return
        assert self._stream is not None
        if self._prepared.request.include_usage:
            result = self._stream.result or self._stream.partial
            yield _sse(self._envelope({"choices": [], "usage": openai_usage(result.usage)}, result.billed_model))
        yield SSE_DONE

    def _envelope(self, payload: dict[str, Any], model: str | None) -> dict[str, Any]:
        prepared = self._prepared
        return {
            **payload,
            "id": prepared.completion_id,
            "object": "chat.completion.chunk",
            "created": prepared.created,
            "model": model or prepared.request.model,
        }

    async def _chunks(
        self, *, keep_alives: bool = False, failed_status: ReplyStatus = "incomplete"
    ) -> AsyncGenerator[dict[str, Any]]:
        """The upstream chunks in OpenAI's shape (our id, created and the served model); `{}` stands for a
        keep-alive. Settles the reply however the iteration ends."""
        stream = self._stream
        assert stream is not None
        status: ReplyStatus = failed_status
        try:
            event: StreamEvent | None = self._first
            iterator = aiter(stream)
            while event is not None:
                if isinstance(event, RawChunk):
                    yield self._envelope(
                        {k: v for k, v in event.payload.items() if k not in ("provider", "usage")},
                        event.payload.get("model"),
                    )
                elif isinstance(event, KeepAlive) and keep_alives:
                    yield {}
                elif isinstance(event, StreamDone):
                    status = "complete"
                    break
                event = await anext(iterator, None)
        except OpenRouterError as exc:
            logger.warning("completion failed mid-stream", extra={"error_type": type(exc).__name__})
            raise exc.to_api_error() from None
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
                await self._settle(stream.result or stream.partial, status)

    async def _settle(self, result: StreamResult, status: ReplyStatus) -> None:
        if self._settled:
            return
        self._settled = True
        served = result.billed_model
        try:
            model = await self._client.get_model(served)
        except OpenRouterError:
            model = None
        cost = cost_of(result.usage, model) if result.usage else Decimal(0)
        try:
            await anyio.to_thread.run_sync(finish_completion, self._db, self._prepared, result, cost, status)
        except OneAIError as exc:
            logger.warning("completion usage not saved", extra={"error_code": exc.code})


def _empty_choice(choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": int(choice.get("index", 0)),
        "message": {"role": "assistant", "content": None},
        "finish_reason": None,
        "logprobs": None,
    }


def _merge_choice(into: dict[str, Any], choice: dict[str, Any]) -> None:
    """Fold one streamed choice delta into the whole message (content and tool calls)."""
    delta = choice.get("delta") or {}
    message = into["message"]
    if delta.get("content"):
        message["content"] = (message["content"] or "") + delta["content"]
    for call in delta.get("tool_calls") or []:
        calls = message.setdefault("tool_calls", [])
        index = int(call.get("index", len(calls)))
        while len(calls) <= index:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        target = calls[index]
        if call.get("id"):
            target["id"] = call["id"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""
    if choice.get("finish_reason"):
        into["finish_reason"] = choice["finish_reason"]
