"""The OpenRouter client: streamed chat with retries before the first token, a short non-streaming
completion, and the model catalog cached in-process.

Usage (the stream must be closed; `async with` does it, also on cancellation):

    client = OpenRouterClient(get_settings())
    async with client.stream_chat("openai/gpt-4o-mini", messages) as stream:
        async for event in stream:
            match event:
                case TextDelta(text): relay(text)
                case KeepAlive(): keep_own_client_alive()
                case StreamDone(result): settle(result.billed_model, result.usage)

Every failure before the first text delta raises a typed `OpenRouterError` from the iterator before any
`TextDelta` was yielded (after retries where a retry can help); after it, `MidStreamError` or
`IdleTimeoutError` carry the partial reply. Closing the stream closes the upstream connection at once,
which is what stops the provider (and the bill) on a client disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import anyio
import httpx
from pydantic import ValidationError

from oneai.config import Settings
from oneai.logging import logger
from oneai.observability import trace_calls
from oneai.openrouter.catalog import OpenRouterModel
from oneai.openrouter.errors import (
    BadGatewayError,
    FirstTokenTimeoutError,
    IdleTimeoutError,
    MidStreamError,
    OpenRouterError,
    PartialStreamError,
    UpstreamConnectionError,
    error_for_code,
    error_for_status,
    parse_retry_after,
    sanitize_message,
    status_for_code,
)
from oneai.openrouter.sse import SSEComment, SSEDecoder, SSEItem
from oneai.openrouter.types import (
    ChatChunk,
    ChatCompletion,
    ImageDelta,
    KeepAlive,
    RawChunk,
    StreamDone,
    StreamEvent,
    StreamResult,
    TextDelta,
    Usage,
)

__all__ = ["ChatStream", "OpenRouterClient", "RetryPolicy", "StreamTimeouts"]

_DONE = "[DONE]"
_USER_AGENT = "oneai-backend (httpx)"
_DRAIN_AFTER_DONE_SECONDS = 0.2
_ERROR_BODY_TIMEOUT_SECONDS = 5.0
_CLOSE_TIMEOUT_SECONDS = 2.0
_rng = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries before the first token only, for failures another attempt can fix.

    `max_retries` extra attempts, waiting a full-jitter exponential backoff (uniform in
    [0, min(max_delay, base_delay * 2**n)]) or the server's `Retry-After`; a `Retry-After` longer than
    `max_retry_after` ends the retries (the caller gets the `RateLimitError` with `retry_after`). No retry
    starts when it would end more than `budget` seconds after the first attempt started."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 10.0
    budget: float = 20.0

    def backoff(self, retry_number: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return _rng.uniform(0.0, max(0.0, ceiling))

    def delay_for(self, error: OpenRouterError, retry_number: int) -> float | None:
        """Seconds to wait before retry number `retry_number` (0-based), or None: do not retry."""
        if not error.retryable or retry_number >= self.max_retries:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return self.backoff(retry_number)


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """Seconds. `first_token` counts from the first request of a stream (retries included) to the first
    token; keep-alive comments do not count. `idle` is the longest silence after the first token (any
    bytes, comments included, reset it). `request` bounds a whole non-streaming call."""

    connect: float = 5.0
    first_token: float = 30.0
    idle: float = 60.0
    write: float = 10.0
    request: float = 30.0


class RetryAttempts:
    """Counts attempts of one logical call and decides, per failure, whether to wait and retry."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0
        self.started: float | None = None

    def begin(self) -> RetryAttempts:
        """Start the budget clock (the anyio clock, so it needs a running event loop)."""
        if self.started is None:
            self.started = anyio.current_time()
        return self

    async def wait_or_raise(self, error: OpenRouterError, *, deadline: float | None = None) -> None:
        """Sleep before the next attempt, or raise `error` when no retry is allowed."""
        error.attempts = self.retries + 1
        delay = self.policy.delay_for(error, self.retries)
        if delay is None:
            raise error
        now = anyio.current_time()
        if now - (self.started if self.started is not None else now) + delay > self.policy.budget:
            raise error
        if deadline is not None and now + delay >= deadline:
            raise error
        self.retries += 1
        logger.warning(
            "OpenRouter request failed, retrying",
            extra={
                "upstream_status": error.status,
                "error_type": type(error).__name__,
                "attempt": self.retries,
                "delay_seconds": round(delay, 3),
            },
        )
        await anyio.sleep(delay)


def _running_loop() -> object | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another async backend (trio)
        return None


class OpenRouterClient:
    """One per container. Owns a lazily created `httpx.AsyncClient` unless `http` is given."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeouts: StreamTimeouts | None = None,
        models_ttl: float = 3600.0,
        models_retry_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.base_url = settings.openrouter_base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or StreamTimeouts()
        self._http = http
        self._owns_http = http is None
        self._http_loop: object | None = None
        self._models_ttl = models_ttl
        self._models_retry_interval = models_retry_interval
        self._clock = clock
        self._models: list[OpenRouterModel] | None = None
        self._models_expire_at = 0.0
        self._models_next_try = 0.0
        # The background refresh `known_model` started, if one is running (one at a time).
        self._models_refresh: asyncio.Task[list[OpenRouterModel]] | None = None

    def __repr__(self) -> str:
        return f"OpenRouterClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it (a background catalog refresh stops first)."""
        if self._models_refresh is not None and not self._models_refresh.done():
            self._models_refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._models_refresh
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- plumbing -----------------------------------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        if not self._owns_http:
            assert self._http is not None
            return self._http
        loop = _running_loop()
        if self._http is None or self._http.is_closed or (loop is not None and loop is not self._http_loop):
            # A new event loop (a new test, or a runtime that made one): connections of the old loop are
            # unusable there, so start a fresh pool.
            trace_calls("httpx")
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeouts.request, connect=self.timeouts.connect),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=20.0),
                follow_redirects=False,
            )
            self._http_loop = loop
        return self._http

    def _secrets(self) -> tuple[str, ...]:
        key = self.settings.openrouter_api_key
        return (key.get_secret_value(),) if key is not None else ()

    def headers(self, *, accept: str = "application/json") -> dict[str, str]:
        headers = {
            "Accept": accept,
            "HTTP-Referer": self.settings.openrouter_referer,
            "X-Title": self.settings.openrouter_title,
            "User-Agent": _USER_AGENT,
        }
        key = self.settings.openrouter_api_key
        if key is not None and key.get_secret_value():
            headers["Authorization"] = f"Bearer {key.get_secret_value()}"
        return headers

    def sanitize(self, message: str | None) -> str:
        """An upstream message made safe for logs and exceptions (no key, one short line)."""
        return sanitize_message(message, secrets=self._secrets())

    def connection_error(self, exc: BaseException) -> UpstreamConnectionError:
        detail = self.sanitize(str(exc)) or type(exc).__name__
        return UpstreamConnectionError(f"Could not reach OpenRouter ({type(exc).__name__}: {detail})")

    async def error_from_response(self, response: httpx.Response) -> OpenRouterError:
        """Map a non-2xx response (body `{"error": {"code", "message", "metadata"}}`) to its exception."""
        message: str | None = None
        code: int | str | None = None
        metadata: dict[str, Any] | None = None
        try:
            with anyio.fail_after(_ERROR_BODY_TIMEOUT_SECONDS):
                body = await response.aread()
            payload = ChatCompletion.model_validate_json(body)
        except (TimeoutError, httpx.HTTPError, ValidationError, ValueError):
            payload = None
        if payload is not None and payload.error is not None:
            message, code, metadata = payload.error.message, payload.error.code, payload.error.metadata
        return error_for_status(
            response.status_code,
            self.sanitize(message) or response.reason_phrase or None,
            code=code,
            metadata=metadata,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    # -- chat ---------------------------------------------------------------------------------------

    def chat_body(
        self,
        model: str,
        messages: Sequence[Mapping[str, object]],
        *,
        stream: bool,
        fallback_models: Sequence[str] = (),
        max_tokens: int | None = None,
        user: str | None = None,
        extra: Mapping[str, Any] | None = None,
        modalities: Sequence[str] = (),
    ) -> dict[str, Any]:
        # `extra`: request parameters passed through as given (tools, temperature...); ours win over them.
        body: dict[str, Any] = {**(extra or {}), "model": model, "messages": [dict(m) for m in messages]}
        body["stream"] = stream
        if modalities:  # e.g. ["image", "text"]: an image model is asked for images too
            body["modalities"] = list(modalities)
        if stream:
            body["usage"] = {"include": True}
        if fallback_models:
            body["models"] = [model, *[m for m in fallback_models if m != model]]
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if user:
            body["user"] = user
        return body

    def stream_chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, object]],
        *,
        fallback_models: Sequence[str] = (),
        max_tokens: int | None = None,
        user: str | None = None,
        extra: Mapping[str, Any] | None = None,
        raw: bool = False,
        modalities: Sequence[str] = (),
    ) -> ChatStream:
        """A streamed chat completion. Nothing is sent until the stream is iterated. `raw=True` yields
        `RawChunk`s (OpenAI's chunks as sent) instead of `TextDelta`s."""
        body = self.chat_body(
            model,
            messages,
            stream=True,
            fallback_models=fallback_models,
            max_tokens=max_tokens,
            user=user,
            extra=extra,
            modalities=modalities,
        )
        return ChatStream(self, body, requested_model=model, raw=raw)

    async def complete(
        self,
        model: str,
        messages: Sequence[Mapping[str, object]],
        max_tokens: int | None = None,
        *,
        fallback_models: Sequence[str] = (),
        user: str | None = None,
    ) -> str:
        """A short non-streaming completion (e.g. a conversation title); the reply's text."""
        body = self.chat_body(
            model, messages, stream=False, fallback_models=fallback_models, max_tokens=max_tokens, user=user
        )
        attempts = RetryAttempts(self.retry).begin()
        while True:
            try:
                return (await self._complete_once(body)).text
            except OpenRouterError as exc:
                await attempts.wait_or_raise(exc)

    async def post_json(
        self, path: str, body: dict[str, Any], *, reply_seconds: float, timed_out: Callable[[], OpenRouterError]
    ) -> httpx.Response:
        """One non-streaming POST (chat completion, embeddings): its 200 response, or the typed error
        (`timed_out()` when no whole reply came within `reply_seconds` after connecting)."""
        http = self.http_client()
        limits = httpx.Timeout(reply_seconds, connect=self.timeouts.connect, write=self.timeouts.write)
        try:
            with anyio.fail_after(reply_seconds + self.timeouts.connect):
                response = await http.post(
                    f"{self.base_url}{path}", json=body, headers=self.headers(), timeout=limits
                )
        except (TimeoutError, httpx.ReadTimeout):
            raise timed_out() from None
        except httpx.TransportError as exc:
            raise self.connection_error(exc) from exc
        if response.status_code != httpx.codes.OK:
            raise await self.error_from_response(response)
        return response

    async def _complete_once(self, body: dict[str, Any]) -> ChatCompletion:
        response = await self.post_json(
            "/chat/completions",
            body,
            reply_seconds=self.timeouts.request,
            timed_out=lambda: FirstTokenTimeoutError("No reply from the model in time"),
        )
        try:
            completion = ChatCompletion.model_validate_json(response.content)
        except (ValidationError, ValueError):
            raise BadGatewayError("OpenRouter sent a reply that is not a chat completion") from None
        if completion.error is not None:
            raise error_for_code(
                completion.error.code, self.sanitize(completion.error.message), metadata=completion.error.metadata
            )
        return completion

    # -- models -------------------------------------------------------------------------------------

    async def list_models(self, *, refresh: bool = False) -> list[OpenRouterModel]:
        """The catalog, cached for `models_ttl` seconds. When a refresh fails the stale list is served and
        the refresh is tried again after `models_retry_interval` seconds; with nothing cached it raises."""
        now = self._clock()
        cached = self._models
        if cached is not None and not refresh and (now < self._models_expire_at or now < self._models_next_try):
            return list(cached)
        try:
            models = await self._fetch_models(retry=cached is None)
        except OpenRouterError as exc:
            if cached is None:
                raise
            self._models_next_try = self._clock() + self._models_retry_interval
            logger.warning(
                "OpenRouter model list refresh failed, serving the cached list",
                extra={"upstream_status": exc.status, "error_type": type(exc).__name__},
            )
            return list(cached)
        self._models = models
        self._models_expire_at = self._clock() + self._models_ttl
        self._models_next_try = 0.0
        return list(models)

    async def get_model(self, model_id: str) -> OpenRouterModel | None:
        for model in await self.list_models():
            if model.id == model_id:
                return model
        return None

    def known_model(self, model_id: str) -> OpenRouterModel | None:
        """The catalog entry as this container knows it now, never waiting for OpenRouter (the chat hot
        path). A missing or expired catalog is refreshed in the background (once at a time) and the stale
        entry, or None before the first list arrived, is answered meanwhile."""
        now = self._clock()
        due = self._models is None or not (now < self._models_expire_at or now < self._models_next_try)
        if due and (self._models_refresh is None or self._models_refresh.done()):
            self._models_refresh = asyncio.get_running_loop().create_task(self._refresh_in_background())
        return next((model for model in self._models or () if model.id == model_id), None)

    async def _refresh_in_background(self) -> list[OpenRouterModel]:
        try:
            return await self.list_models()
        except OpenRouterError as exc:
            # Nothing cached yet and OpenRouter failed: the next turn tries again.
            logger.warning("OpenRouter model list not loaded", extra={"error_type": type(exc).__name__})
            return []

    async def _fetch_models(self, *, retry: bool) -> list[OpenRouterModel]:
        attempts = RetryAttempts(self.retry if retry else RetryPolicy(max_retries=0)).begin()
        while True:
            try:
                return await self._fetch_models_once()
            except OpenRouterError as exc:
                await attempts.wait_or_raise(exc)

    async def _fetch_models_once(self) -> list[OpenRouterModel]:
        http = self.http_client()
        try:
            with anyio.fail_after(self.timeouts.request + self.timeouts.connect):
                response = await http.get(f"{self.base_url}/models", headers=self.headers())
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamConnectionError("OpenRouter did not send the model list in time") from None
        except httpx.TransportError as exc:
            raise self.connection_error(exc) from exc
        if response.status_code != httpx.codes.OK:
            raise await self.error_from_response(response)
        try:
            payload = response.json()
        except ValueError:
            raise BadGatewayError("OpenRouter sent a model list that is not JSON") from None
        entries = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise BadGatewayError("OpenRouter sent a model list without `data`")
        models: list[OpenRouterModel] = []
        for entry in entries:
            try:
                models.append(OpenRouterModel.model_validate(entry))
            except ValidationError:
                logger.warning("Skipping a model entry that does not validate")
        return models


_State = Literal["new", "open", "done", "failed", "closed"]


class ChatStream:
    """One streamed chat completion: an async context manager and an async iterator of `StreamEvent`s.

    Events: `TextDelta` (relay it), `KeepAlive` (upstream comment), and last `StreamDone` with the
    `StreamResult`. `partial` tells what was received so far at any time (e.g. on a client disconnect);
    `result` is set once the stream ended normally."""

    def __init__(
        self, client: OpenRouterClient, body: dict[str, Any], *, requested_model: str, raw: bool = False
    ) -> None:
        self._client = client
        self._raw = raw
        self._relayed = False  # raw: a chunk with choices was handed out (no retry after that)
        self._body = body
        self._requested_model = requested_model
        self._timeouts = client.timeouts
        self._state: _State = "new"
        self._attempts = RetryAttempts(client.retry)
        self._deadline = 0.0  # anyio clock: when the first token must have arrived
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._decoder = SSEDecoder()
        self._pending: deque[StreamEvent] = deque()
        self._deferred: OpenRouterError | None = None
        self._text: list[str] = []
        self._images: list[str] = []  # data URLs of the images the model made (image output models)
        self._token_seen = False
        self._model: str | None = None
        self._header_generation_id: str | None = None
        self._chunk_id: str | None = None
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._result: StreamResult | None = None

    # -- public -------------------------------------------------------------------------------------

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._pending:
            if self._deferred is not None:
                error, self._deferred = self._deferred, None
                await self._fail()
                raise error
            if self._state in ("done", "failed", "closed"):
                raise StopAsyncIteration
            try:
                await self._step()
            except BaseException:
                # Any failure, a timeout or a cancellation (CancelledError) closes the upstream connection.
                await self._fail()
                raise
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Close the upstream response and connection now (stops the generation upstream)."""
        if self._state in ("new", "open"):
            self._state = "closed"
        self._pending.clear()
        with anyio.move_on_after(_CLOSE_TIMEOUT_SECONDS, shield=True):  # runs even when cancelled
            await self._close_response()

    async def collect(self) -> StreamResult:
        """Read the whole stream and return its result (raises like iteration does)."""
        async for _event in self:
            pass
        if self._result is None:
            raise RuntimeError("the stream was closed before it finished")
        return self._result

    @property
    def requested_model(self) -> str:
        return self._requested_model

    @property
    def result(self) -> StreamResult | None:
        return self._result

    @property
    def partial(self) -> StreamResult:
        """What was received so far (text, served model, generation id, usage if it came)."""
        return self._snapshot(complete=False)

    @property
    def text_started(self) -> bool:
        """Whether any text (or image) was received (after that, failures are no longer retried)."""
        return self._produced

    @property
    def _produced(self) -> bool:
        return bool(self._text or self._images)

    @property
    def attempts(self) -> int:
        return self._attempts.retries + 1

    # -- machinery ----------------------------------------------------------------------------------

    def _snapshot(self, *, complete: bool) -> StreamResult:
        return StreamResult(
            text="".join(self._text),
            images=tuple(self._images),
            requested_model=self._requested_model,
            model=self._model,
            generation_id=self._header_generation_id or self._chunk_id,
            usage=self._usage,
            finish_reason=self._finish_reason,
            complete=complete,
        )

    def _remaining_for_first_token(self) -> float:
        return max(0.0, self._deadline - anyio.current_time())

    async def _fail(self) -> None:
        self._state = "failed"
        with anyio.move_on_after(_CLOSE_TIMEOUT_SECONDS, shield=True):  # runs even when cancelled
            await self._close_response()

    async def _close_response(self) -> None:
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        if chunks is not None:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):  # a half-read generator may complain; closed below anyway
                    await closer()
        if response is not None:
            try:
                await response.aclose()
            except Exception:
                logger.debug("Closing the OpenRouter response failed", exc_info=True)

    def _reset_attempt(self) -> None:
        self._decoder = SSEDecoder()
        self._model = None
        self._header_generation_id = None
        self._chunk_id = None
        self._usage = None
        self._finish_reason = None
        self._token_seen = False

    async def _step(self) -> None:
        """Make progress: open the response when needed and read once. Failures before the first text are
        retried here (they never reach the caller unless retrying is not allowed)."""
        while True:
            try:
                if self._response is None:
                    await self._open()
                await self._read()
                return
            except OpenRouterError as exc:
                if self._produced or self._relayed or isinstance(exc, PartialStreamError):
                    raise
                await self._close_response()
                self._reset_attempt()
                await self._attempts.wait_or_raise(exc, deadline=self._deadline)

    async def _open(self) -> None:
        if self._state == "new":
            self._state = "open"
            self._attempts.begin()
            self._deadline = anyio.current_time() + self._timeouts.first_token
        client = self._client
        http = client.http_client()
        headers = client.headers(accept="text/event-stream")
        headers["Accept-Encoding"] = "identity"  # compressed SSE could be held back by the decompressor
        request = http.build_request(
            "POST",
            f"{client.base_url}/chat/completions",
            json=self._body,
            headers=headers,
            timeout=httpx.Timeout(
                None, connect=self._timeouts.connect, write=self._timeouts.write, pool=self._timeouts.connect
            ),
        )
        try:
            with anyio.fail_after(self._remaining_for_first_token()):
                response = await http.send(request, stream=True)
        except TimeoutError:
            raise FirstTokenTimeoutError("No response from OpenRouter before the first-token timeout") from None
        except httpx.TransportError as exc:
            raise client.connection_error(exc) from exc
        self._response = response
        if response.status_code != httpx.codes.OK:
            raise await client.error_from_response(response)
        self._header_generation_id = response.headers.get("x-generation-id") or None
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            # An error object under 200 without a stream.
            raise await self._json_error(response)
        self._chunks = response.aiter_bytes()

    async def _json_error(self, response: httpx.Response) -> OpenRouterError:
        try:
            with anyio.fail_after(_ERROR_BODY_TIMEOUT_SECONDS):
                body = await response.aread()
            payload = ChatCompletion.model_validate_json(body)
        except (TimeoutError, httpx.HTTPError, ValidationError, ValueError):
            return BadGatewayError("OpenRouter answered a stream request with an unreadable JSON body")
        if payload.error is None:
            return BadGatewayError("OpenRouter answered a stream request without a stream")
        return error_for_code(
            payload.error.code, self._client.sanitize(payload.error.message), metadata=payload.error.metadata
        )

    async def _read(self) -> None:
        assert self._chunks is not None
        timeout = self._timeouts.idle if self._token_seen else self._remaining_for_first_token()
        try:
            with anyio.fail_after(timeout):
                chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._decoder.close()
            await self._end_of_body()
            return
        except TimeoutError:
            if self._token_seen:
                raise IdleTimeoutError(
                    f"No data from the model for {self._timeouts.idle:g} s", partial=self.partial
                ) from None
            raise FirstTokenTimeoutError(
                f"No token from the model within {self._timeouts.first_token:g} s"
            ) from None
        except httpx.TransportError as exc:
            if self._produced:
                raise MidStreamError(
                    f"The model stream broke off ({type(exc).__name__})", partial=self.partial
                ) from exc
            raise self._client.connection_error(exc) from exc
        items = self._decoder.feed(chunk)
        await self._handle_items(items)

    async def _handle_items(self, items: list[SSEItem]) -> None:
        for item in items:
            if self._state != "open":
                return
            try:
                if isinstance(item, SSEComment):
                    self._pending.append(KeepAlive(item.text))
                elif item.data.strip() == _DONE:
                    await self._finish()
                else:
                    self._handle_chunk(item.data)
            except PartialStreamError as exc:
                if any(isinstance(event, TextDelta | ImageDelta | RawChunk) for event in self._pending):
                    # Let the caller relay the text that arrived with the error before raising it.
                    self._deferred = exc
                    return
                raise

    def _handle_chunk(self, data: str) -> None:
        try:
            chunk = ChatChunk.model_validate_json(data)
        except (ValidationError, ValueError):
            if self._produced:
                raise MidStreamError("OpenRouter sent a malformed chunk", partial=self.partial) from None
            raise BadGatewayError("OpenRouter sent a malformed chunk") from None
        if chunk.model:
            self._model = chunk.model
        if chunk.id:
            self._chunk_id = chunk.id
        if chunk.usage is not None:
            self._usage = chunk.usage
        finish_reason = chunk.finish_reason
        if finish_reason is not None:
            self._finish_reason = finish_reason
        if chunk.error is not None or finish_reason == "error":
            self._raise_chunk_error(chunk)
        text = chunk.text
        if self._raw:
            self._handle_raw(data, chunk)
        elif text:
            self._token_seen = True
            self._text.append(text)
            self._pending.append(TextDelta(text))
        for url in () if self._raw else chunk.image_urls:  # a raw stream relays them in its chunks
            self._token_seen = True
            self._images.append(url)
            self._pending.append(ImageDelta(url))
        if not text and chunk.reasoning:
            self._token_seen = True  # the model is producing (thinking): the first-token wait is over

    def _handle_raw(self, data: str, chunk: ChatChunk) -> None:
        if not chunk.choices:
            return  # the usage chunk: kept in the result
        payload = json.loads(data)
        if not isinstance(payload, dict):
            return
        payload.pop("usage", None)
        if chunk.text or chunk.reasoning or chunk.finish_reason or _has_tool_calls(payload):
            # Something the client keeps was produced: no more first-token wait, and no retry after it.
            self._token_seen = True
            self._relayed = True
        if chunk.text:
            self._text.append(chunk.text)
        self._pending.append(RawChunk(payload))

    def _raise_chunk_error(self, chunk: ChatChunk) -> None:
        error = chunk.error
        code = error.code if error is not None else None
        message = self._client.sanitize(error.message if error is not None else None) or "The model failed"
        metadata = error.metadata if error is not None else None
        text = chunk.text
        if text:  # text in the very chunk that reports the error still belongs to the reply
            self._text.append(text)
            self._pending.append(TextDelta(text))
        if self._produced:
            raise MidStreamError(
                message, partial=self.partial, status=status_for_code(code), code=code, metadata=metadata
            )
        raise error_for_code(code, message, metadata=metadata)

    async def _end_of_body(self) -> None:
        """The body ended without `data: [DONE]`."""
        if self._finish_reason is not None and self._finish_reason != "error":
            await self._finish()  # the model finished; only the terminator was missing
            return
        if self._produced:
            raise MidStreamError("The model stream ended before it finished", partial=self.partial)
        raise BadGatewayError("The model stream ended before any token")

    async def _finish(self) -> None:
        self._result = self._snapshot(complete=True)
        self._pending.append(StreamDone(self._result))
        self._state = "done"
        chunks = self._chunks
        if chunks is not None:
            # Read the end of the body so the connection can go back to the pool.
            with anyio.move_on_after(_DRAIN_AFTER_DONE_SECONDS):
                try:
                    async for _rest in chunks:
                        pass
                except httpx.HTTPError:
                    pass
        await self._close_response()


def _has_tool_calls(payload: Mapping[str, Any]) -> bool:
    choices = payload.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and isinstance(c.get("delta"), dict) and bool(c["delta"].get("tool_calls"))
        for c in choices
    )
