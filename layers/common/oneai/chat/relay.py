"""Relay one reply from OpenRouter to the client as AI SDK stream parts, and persist how it ended.

`ChatRelay.open()` starts the upstream request and waits for the first token before any byte goes to
the client, so a failure up to then is still a plain JSON error (and the reserved unit is refunded).
After that, `run()` hands the stream's parts to its caller (`oneai.chat.resumable.LiveReply`, which keeps
them for every reader, so no reader's connection matters) until the reply ends, is stopped, or reaches
the time limit; the reply is saved, partial ones as `incomplete`, with the usage that is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import anyio
import anyio.to_thread

from oneai.attachments.models import attachment_url
from oneai.attachments.service import (
    GeneratedImage,
    mark_attached_after_commit,
    model_image_part,
    store_generated_image,
)
from oneai.attachments.storage import get_object_store
from oneai.chat import parts
from oneai.chat.context import ImagePart, build_context, estimate_tokens
from oneai.chat.offered_models import DEFAULT_CONTEXT_LENGTH
from oneai.chat.turn import FinishedTurn, PreparedTurn, ReplyOutcome, finish_turn, refund_turn, save_title
from oneai.chatbots import payment
from oneai.chatbots.knowledge_prompt import system_messages
from oneai.db.connection import Database
from oneai.errors import OneAIError
from oneai.logging import logger
from oneai.money import plain_decimal
from oneai.observability import MetricUnit, count_server_error, emit_metric
from oneai.openrouter.catalog import OpenRouterModel, cost_of
from oneai.openrouter.client import ChatStream, OpenRouterClient
from oneai.openrouter.errors import IdleTimeoutError, OpenRouterError, PartialStreamError
from oneai.openrouter.types import (
    ImageDelta,
    KeepAlive,
    StreamDone,
    StreamEvent,
    StreamResult,
    TextDelta,
    Usage,
)
from oneai.timestamps import iso_z

TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the user's message below. "
    "Answer with the title only: no quotes, no punctuation at the end."
)
TITLE_MAX_TOKENS = 24
TITLE_MAX_CHARS = 80
TITLE_TIMEOUT_SECONDS = 15.0
TITLE_GRACE_AFTER_REPLY_SECONDS = 3.0
MIDSTREAM_ERROR_TEXT = "The model stopped with an error before finishing; the partial reply was kept."
IDLE_ERROR_TEXT = "The model stopped responding; the partial reply was kept."
IMAGE_AND_TEXT = ("image", "text")
SAVE_ERROR_TEXT = "The reply could not be saved because the conversation changed meanwhile."
SAVE_FAILED_TEXT = "The reply could not be saved."


def clean_title(raw: str) -> str | None:
    title = re.sub(r"\s+", " ", raw).strip().strip("\"'`*#").strip().rstrip(".!:;")
    return title[:TITLE_MAX_CHARS].strip() or None


class ChatRelay:
    def __init__(
        self,
        db: Database,
        client: OpenRouterClient,
        prepared: PreparedTurn,
        *,
        model: OpenRouterModel | None,
        title_model: str,
        upstream: OpenRouterClient | None = None,
    ) -> None:
        self._db = db
        self._client = client
        # Where the reply is asked: a client at the workspace key's endpoint (oneai.chatbots.payment), else
        # the platform's OpenRouter (`client`, which also makes the title and knows the catalog).
        self._upstream = upstream
        self._prepared = prepared
        self._model = model
        self._title_model = title_model
        self._stream: ChatStream | None = None
        self._first: StreamEvent | None = None
        self._title_task: asyncio.Task[str | None] | None = None
        self._outcome: ReplyOutcome | None = None
        self._save_failed = False  # the save raised something other than a refusal
        self._result: StreamResult | None = None
        self._images: list[GeneratedImage] = []  # stored as they arrived; rows written with the reply
        self._reading: anyio.CancelScope | None = None
        self._stop_requested = False
        self._first_text_at: float | None = None  # time.monotonic() of the reply's first text
        self._prompt_tokens = 0  # the estimate of what the model was sent (a reply without usage is paid by it)

    async def open(self) -> None:
        """Start the reply; a failure before its first token refunds the unit and raises the API error."""
        prepared = self._prepared
        if prepared.fixed_reply is not None:  # a chatbot's fixed fallback message: no model is asked
            return
        chatbot = prepared.chatbot
        try:
            context_length = (self._model.context_length if self._model else None) or DEFAULT_CONTEXT_LENGTH
            # A chatbot's prompt first, then its passages' block, then the conversation (in what is left of
            # the window).
            leading = [] if chatbot is None else system_messages(chatbot.system_prompt, prepared.knowledge)
            leading_tokens = sum(estimate_tokens(str(m["content"])) for m in leading)
            messages = leading + build_context(
                prepared.history, max(1, context_length - leading_tokens), image_part=self._image_part()
            )
            self._prompt_tokens = sum(estimate_tokens(str(m["content"])) for m in messages)
            if prepared.first_exchange and prepared.user_message is not None:
                self._title_task = asyncio.create_task(self._generate_title(prepared.user_message.content))
            key = prepared.key
            self._stream = (self._upstream or self._client).stream_chat(
                prepared.turn.model_id if key is None else key.upstream_model,
                messages,
                fallback_models=prepared.offered.fallbacks if key is None or key.provider == "openrouter" else (),
                max_tokens=None if chatbot is None else chatbot.max_tokens,
                extra=None if chatbot is None else {"temperature": chatbot.temperature},
                user=str(prepared.principal.user_id),
                # A model that makes images is asked for them (OpenRouter's image generation).
                modalities=IMAGE_AND_TEXT if self._model is not None and self._model.generates_images else (),
            )
            self._first = await self._first_event(self._stream)
            if isinstance(self._first, TextDelta | ImageDelta):
                self._first_text_at = time.monotonic()
        except BaseException as exc:
            await self._abandon()
            if isinstance(exc, OpenRouterError):
                key = prepared.key
                if key is not None and payment.refused(key.provider, exc.status):
                    raise (await anyio.to_thread.run_sync(payment.key_refused, self._db, key)) from None
                if key is not None and payment.out_of_funds(exc.status):
                    raise payment.key_out_of_funds(key) from None
                raise exc.to_api_error() from None
            raise

    def _image_part(self) -> ImagePart | None:
        """Image parts for a model that reads images (when the catalog does not say, it is assumed: the
        route refused images for models known not to read them); None otherwise."""
        if self._model is not None and "image" not in self._model.input_modalities:
            return None
        if not any(m.attachments for m in self._prepared.history):
            return None
        store, user_id = get_object_store(), self._prepared.principal.user_id
        return lambda attachment: model_image_part(store, user_id, attachment.id, attachment.media_type)

    async def _stored_image(self, url: str) -> bytes:
        """Store an image the model made and announce it as a `file` part (nothing when it is unusable)."""
        image = await anyio.to_thread.run_sync(
            store_generated_image, get_object_store(), self._prepared.principal.user_id, url
        )
        if image is None:
            return b""
        self._images.append(image)
        return parts.file(image.media_type, attachment_url(image.attachment_id))

    async def _first_event(self, stream: ChatStream) -> StreamEvent:
        async for event in stream:
            if not isinstance(event, KeepAlive):
                return event
        raise RuntimeError("the upstream stream ended without an event")

    async def _abandon(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._stream is not None:
                await self._stream.aclose()
            if self._title_task is not None:
                self._title_task.cancel()
            await anyio.to_thread.run_sync(refund_turn, self._db, self._prepared)
            await self._close_upstream()

    async def _close_upstream(self) -> None:
        if self._upstream is not None:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()

    def stop(self) -> None:
        """Stop reading the model now (a stop request, or the time limit): the text so far is kept as
        `incomplete` and the stream still ends with `finish`."""
        self._stop_requested = True
        if self._reading is not None:
            self._reading.cancel()

    @property
    def status(self) -> Literal["complete", "incomplete"]:
        """How the reply was saved (`incomplete` until it was saved complete)."""
        return self._outcome.status if self._outcome is not None else "incomplete"

    async def run(self, emit: Callable[[bytes], None], *, time_limit: float) -> None:
        """Relay the reply to `emit` until its end, whoever reads it: the stream's parts, then the saved
        reply's ending. Reading stops at `stop()` or after `time_limit` seconds (saved `incomplete`)."""
        try:
            await self._run(emit, time_limit=time_limit)
        finally:
            await self._close_upstream()

    async def _run(self, emit: Callable[[bytes], None], *, time_limit: float) -> None:
        prepared, stream = self._prepared, self._stream
        emit(parts.start(str(prepared.reply_id)))
        emit(
            parts.data(
                "conversation", self._conversation_part(prepared.conversation.title), part_id="conversation"
            )
        )
        for passage in prepared.knowledge:  # the passages the reply is given, before its text
            emit(parts.source_document(passage))
        emit(parts.text_start())
        if prepared.fixed_reply is not None:
            self._first_text_at = time.monotonic()
            emit(parts.text_delta(prepared.fixed_reply))
            fixed = StreamResult(text=prepared.fixed_reply, requested_model=prepared.turn.model_id, complete=True)
            await self._ending(fixed, None, emit)
            return
        assert stream is not None
        error_text: str | None = None
        stopped = False
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + time_limit) as reading:
                self._reading = reading
                if self._stop_requested:
                    reading.cancel()
                await self._relay(stream, emit)
            stopped = reading.cancelled_caught
        except PartialStreamError as exc:
            self._result = exc.partial
            error_text = IDLE_ERROR_TEXT if isinstance(exc, IdleTimeoutError) else MIDSTREAM_ERROR_TEXT
            logger.warning("reply failed mid-stream", extra={"error_type": type(exc).__name__})
        except BaseException:
            # The generation itself was cancelled (the server is shutting down) or broke: keep what came.
            with anyio.CancelScope(shield=True):
                await stream.aclose()
                await self._save(stream.partial, "incomplete")
                if self._title_task is not None:
                    self._title_task.cancel()
            raise
        finally:
            self._reading = None
        await stream.aclose()
        if stopped:
            logger.info("reply stopped", extra={"by": "request" if self._stop_requested else "time limit"})
            await self._ending(stream.partial, None, emit, status="incomplete")
        else:
            await self._ending(self._result or stream.partial, error_text, emit)

    async def _relay(self, stream: ChatStream, emit: Callable[[bytes], None]) -> None:
        """The reply's text as parts; the stream's result lands in `self._result`."""
        first = self._first
        if isinstance(first, StreamDone):
            self._result = first.result
            return
        if isinstance(first, TextDelta):
            emit(parts.text_delta(first.text))
        elif isinstance(first, ImageDelta):
            emit(await self._stored_image(first.url))
        async for event in stream:
            if isinstance(event, TextDelta):
                emit(parts.text_delta(event.text))
            elif isinstance(event, ImageDelta):
                emit(await self._stored_image(event.url))
            elif isinstance(event, KeepAlive):
                emit(parts.KEEP_ALIVE)
            elif isinstance(event, StreamDone):
                self._result = event.result

    async def _ending(
        self,
        result: StreamResult,
        error_text: str | None,
        emit: Callable[[bytes], None],
        *,
        status: Literal["complete", "incomplete"] | None = None,
    ) -> None:
        if status is None:
            status = "complete" if error_text is None else "incomplete"
        finished = await self._save(result, status)
        emit(parts.text_end())
        if finished is None and error_text is None:
            error_text = SAVE_FAILED_TEXT if self._save_failed else SAVE_ERROR_TEXT
        if error_text is not None or finished is None or self._outcome is None:
            emit(parts.error(error_text or SAVE_ERROR_TEXT))
            emit(parts.DONE)
            return
        emit(parts.data("usage", self._usage_part(self._outcome, finished)))
        title = await self._title()
        if title is not None:
            emit(parts.data("conversation", self._conversation_part(title), part_id="conversation"))
        emit(parts.finish())
        emit(parts.DONE)

    async def _save(self, result: StreamResult, status: Literal["complete", "incomplete"]) -> FinishedTurn | None:
        key = self._prepared.key
        # A provider's own endpoint names the model without its provider: the reply keeps the requested id.
        served = (
            result.billed_model if key is None or key.provider == "openrouter" else self._prepared.turn.model_id
        )
        model = self._model if self._model and self._model.id == served else self._client.known_model(served)
        usage = result.usage
        if usage is None and self._prepared.chatbot is not None and (result.text or self._images):
            # The model wrote but its usage never came (cut by a stop or the time limit, broken mid-stream,
            # or not sent): a workspace's reply is paid for what it cost all the same, its tokens estimated
            # (what it was sent, what it wrote) at the catalog's prices, else it would be free.
            usage = Usage(prompt_tokens=self._prompt_tokens, completion_tokens=estimate_tokens(result.text))
        if model is None and usage is not None and usage.cost is None:
            # Only the price fallback needs the catalog; the reply has streamed, so waiting is harmless here.
            with contextlib.suppress(OpenRouterError):
                model = await self._client.get_model(served)
        outcome = ReplyOutcome(
            text=result.text,
            status=status,
            served_model=served,
            generation_id=result.generation_id,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost=cost_of(usage, model) if usage else Decimal(0),
            images=tuple(self._images),
            first_text_at=self._first_text_at,
        )
        self._outcome = outcome
        emit_metric("ReplyTokens", outcome.prompt_tokens + outcome.completion_tokens, model=served, status=status)
        emit_metric("ReplyCost", float(outcome.cost), MetricUnit.NoUnit, model=served)
        try:
            finished = await anyio.to_thread.run_sync(finish_turn, self._db, self._prepared, outcome)
        except OneAIError as exc:
            logger.warning("reply not saved", extra={"error_code": exc.code})
            return None
        except Exception as exc:  # the reader gets the stream's ending whatever broke
            # Not one of the product's refusals (the database refused the write: the member was removed
            # while the reply streamed, or it failed): its cost was taken all the same (finish_turn).
            logger.error("reply not saved", extra={"error_type": type(exc).__name__})
            count_server_error(500)  # the app-5xx alarm's metric: the 200 already sent hides it
            self._save_failed = True
            return None
        if finished.settlement is not None:  # committed: a crossing of the low-balance threshold goes out
            await anyio.to_thread.run_sync(payment.announce, finished.settlement)
        if self._images:  # the reply lists them now: keep them past the expiry of unattached objects
            keys = [image.key for image in self._images]
            await anyio.to_thread.run_sync(mark_attached_after_commit, get_object_store(), keys)
        return finished

    def _conversation_part(self, title: str | None) -> dict[str, Any]:
        return {
            "id": str(self._prepared.conversation.id),
            "title": title,
            "user_message_id": str(self._prepared.parent.id),
        }

    @staticmethod
    def _usage_part(outcome: ReplyOutcome, finished: FinishedTurn) -> dict[str, Any]:
        quota = finished.quota
        return {
            "model": outcome.served_model,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": plain_decimal(outcome.cost),  # money is a decimal string everywhere
            "quota": None
            if quota is None
            else {
                "quota_key": quota.quota_key,
                "used": quota.used,
                "limit": quota.limit,
                "remaining": quota.remaining,
                "resets_at": iso_z(quota.resets_at),
            },
        }

    async def _generate_title(self, first_message: str) -> str | None:
        """A short title from the first message, with a cheap model, outside the user's quota."""
        try:
            with anyio.fail_after(TITLE_TIMEOUT_SECONDS):
                raw = await self._client.complete(
                    self._title_model,
                    [
                        {"role": "system", "content": TITLE_PROMPT},
                        {"role": "user", "content": first_message[:2000]},
                    ],
                    max_tokens=TITLE_MAX_TOKENS,
                )
            title = clean_title(raw)
            if title is not None:
                await anyio.to_thread.run_sync(save_title, self._db, self._prepared, title)
            return title
        except (OpenRouterError, OneAIError, TimeoutError) as exc:
            # The conversation keeps its (empty) title; the user can still rename it.
            logger.info("title not generated", extra={"error_type": type(exc).__name__})
            return None

    async def _title(self) -> str | None:
        if self._title_task is None:
            return None
        with anyio.move_on_after(TITLE_GRACE_AFTER_REPLY_SECONDS):
            return await asyncio.shield(self._title_task)
        self._title_task.cancel()
        return None
