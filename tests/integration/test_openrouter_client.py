"""The OpenRouter client against the fake OpenRouter over a real socket (no database needed)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from local.fake_openrouter import (
    Drop,
    FakeOpenRouter,
    Hang,
    Infinite,
    MidStreamError,
    ModelsReply,
    Reply,
    Stall,
    Status,
)
from oneai.config import Settings
from oneai.errors import UpstreamError
from oneai.openrouter import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ChatChunk,
    FirstTokenTimeoutError,
    GatewayTimeoutError,
    IdleTimeoutError,
    InsufficientCreditsError,
    KeepAlive,
    ModerationError,
    OpenRouterClient,
    OpenRouterError,
    OpenRouterModel,
    ProviderUnavailableError,
    RateLimitError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    StreamDone,
    StreamEvent,
    StreamTimeouts,
    TextDelta,
    UpstreamConnectionError,
    Usage,
    cost_of,
    error_for_code,
    error_for_status,
)
from oneai.openrouter import MidStreamError as ClientMidStreamError
from oneai.openrouter.errors import parse_retry_after

# A regression that stops a timeout from firing must fail fast, not hang the run.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(15)]

API_KEY = "sk-or-v1-test-0123456789abcdef-never-shown"
PROMPT = "my secret plan is to paint the moon purple"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_retry_after=5.0, budget=10.0)
TIMEOUTS = StreamTimeouts(connect=2.0, first_token=5.0, idle=5.0, request=5.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOpenRouter) -> Iterator[None]:
    fake.reset()
    yield
    fake.reset()


def settings_for(base_url: str) -> Settings:
    return Settings(
        openrouter_api_key=SecretStr(API_KEY),
        openrouter_base_url=base_url,
        openrouter_referer="https://oneai.test",
        openrouter_title="OneAI Test",
    )


def make_client(base_url: str, **kwargs: Any) -> OpenRouterClient:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeouts", TIMEOUTS)
    return OpenRouterClient(settings_for(base_url), **kwargs)


@pytest.fixture
async def client(fake: FakeOpenRouter) -> AsyncIterator[OpenRouterClient]:
    async with make_client(fake.base_url) as openrouter:
        yield openrouter


async def read_all(
    client: OpenRouterClient, model: str = "openai/gpt-4o-mini", **kwargs: Any
) -> list[StreamEvent]:
    async with client.stream_chat(model, MESSAGES, **kwargs) as stream:
        return [event async for event in stream]


def texts(events: list[StreamEvent]) -> list[str]:
    return [event.text for event in events if isinstance(event, TextDelta)]


def done(events: list[StreamEvent]) -> StreamDone:
    assert isinstance(events[-1], StreamDone)
    return events[-1]


def assert_no_secrets(error: BaseException) -> None:
    texts_to_check = [str(error), repr(error)]
    if isinstance(error, OpenRouterError):
        api_error = error.to_api_error()
        texts_to_check += [error.message, api_error.message, repr(api_error.details), repr(error.metadata)]
    for text in texts_to_check:
        assert API_KEY not in text
        assert PROMPT not in text


# -- a normal reply --------------------------------------------------------------------------------


async def test_normal_reply_streams_text_then_done(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN a scripted reply in three chunks
    fake.script(Reply(chunks=["Hel", "lo", " world"]))
    # WHEN it is streamed
    events = await read_all(client, max_tokens=50, user="user-1")
    # THEN each chunk is one text delta, and the stream ends with the result
    assert texts(events) == ["Hel", "lo", " world"]
    result = done(events).result
    assert result.text == "Hello world"
    assert result.complete
    assert result.finish_reason == "stop"
    assert result.model == "openai/gpt-4o-mini"
    assert result.requested_model == "openai/gpt-4o-mini"
    # the generation id is the X-Generation-Id header
    [request] = fake.chat_requests
    assert result.generation_id == request.generation_id
    assert result.generation_id is not None
    assert result.generation_id.startswith("gen-")
    # and the request is what OpenRouter expects
    assert request.body == {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "usage": {"include": True},
        "max_tokens": 50,
        "user": "user-1",
    }
    assert request.finished_at is not None
    assert not request.disconnected


async def test_offline_default_reply_is_labelled_and_derived_from_the_last_message(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # GIVEN no script: the fake answers like the offline model
    async with client.stream_chat("oneai/offline", MESSAGES) as stream:
        first = await stream.collect()
    async with client.stream_chat("oneai/offline", MESSAGES) as stream:
        second = await stream.collect()
    # THEN the reply is deterministic, labelled offline, quotes the user, in several chunks
    assert first.text == second.text
    assert first.text.startswith("[offline]")
    assert PROMPT in first.text
    assert first.model == "oneai/offline"
    assert first.usage is not None
    assert first.usage.cost == 0


async def test_non_streaming_complete(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Status(503), Reply(chunks=["Painting ", "the moon"]))
    title = await client.complete("openai/gpt-4o-mini", MESSAGES, max_tokens=12)
    assert title == "Painting the moon"
    assert [r.body["stream"] for r in fake.chat_requests] == [False, False]
    assert fake.chat_requests[-1].body["max_tokens"] == 12


# -- the odd parts of the protocol -------------------------------------------------------------------


async def test_keepalive_comments_are_events_but_not_text(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Reply(chunks=["Hi"], keepalives_before=2))
    events = await read_all(client)
    assert events[:2] == [KeepAlive("OPENROUTER PROCESSING"), KeepAlive("OPENROUTER PROCESSING")]
    assert texts(events) == ["Hi"]
    assert done(events).result.text == "Hi"


async def test_usage_only_last_chunk_is_kept(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN a reply whose last chunk has `choices: []` and only usage (tokens and cost)
    usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13, "cost": 0.00042, "is_byok": False}
    fake.script(Reply(chunks=["A", "B"], usage=usage))
    result = done(await read_all(client)).result
    # THEN the usage is kept, unknown keys ignored
    assert result.usage == Usage(prompt_tokens=11, completion_tokens=2, total_tokens=13, cost=0.00042)
    assert cost_of(result.usage) == Decimal("0.00042")


async def test_served_model_differs_from_requested(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN a request with fallbacks, served by the fallback
    fake.script(Reply(chunks=["ok"], served_model="openai/gpt-4o-mini"))
    events = await read_all(client, "anthropic/claude-sonnet-4", fallback_models=["openai/gpt-4o-mini"])
    result = done(events).result
    # THEN the served model is the one to bill
    assert result.requested_model == "anthropic/claude-sonnet-4"
    assert result.model == "openai/gpt-4o-mini"
    assert result.billed_model == "openai/gpt-4o-mini"
    assert fake.chat_requests[0].body["models"] == ["anthropic/claude-sonnet-4", "openai/gpt-4o-mini"]


async def test_generation_id_falls_back_to_the_chunk_id(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Reply(chunks=["x"], generation_header=False, generation_id="gen-from-chunk-1"))
    assert done(await read_all(client)).result.generation_id == "gen-from-chunk-1"


async def test_missing_done_after_finish_reason_still_completes(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Reply(chunks=["x"], send_done=False))
    result = done(await read_all(client)).result
    assert result.complete
    assert result.text == "x"


# -- errors before the first token: map and retry ----------------------------------------------------


async def test_429_with_retry_after_then_success(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN a 429 asking to wait one second, then a reply
    fake.script(Status(429, retry_after=1), Reply(chunks=["later"]))
    started = time.monotonic()
    async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
        result = await stream.collect()
        attempts = stream.attempts
    # THEN the client waited as asked and the second request succeeded
    assert time.monotonic() - started >= 0.95
    assert result.text == "later"
    assert attempts == 2
    assert len(fake.chat_requests) == 2


async def test_429_with_retry_after_beyond_the_cap_is_not_retried(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Status(429, retry_after=60))
    with pytest.raises(RateLimitError) as caught:
        await read_all(client)
    assert caught.value.retry_after == 60
    assert caught.value.to_api_error().details["retry_after"] == 60
    assert len(fake.chat_requests) == 1


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, ModerationError),
    ],
)
async def test_client_errors_are_not_retried(
    fake: FakeOpenRouter, client: OpenRouterClient, status: int, error_type: type[OpenRouterError]
) -> None:
    # GIVEN an error another attempt cannot fix (moderation metadata echoes the prompt)
    metadata = {"reasons": ["silly"], "flagged_input": PROMPT, "provider_name": "Fake"}
    fake.script(Status(status, metadata=metadata), Reply(chunks=["never"]))
    # WHEN streaming THEN it fails at once, after one request
    with pytest.raises(error_type) as caught:
        await read_all(client)
    assert len(fake.chat_requests) == 1
    assert fake.pending_scenarios == 1
    error = caught.value
    assert error.status == status
    assert not error.retryable
    assert error.attempts == 1
    # and the client gets a 502 without the prompt or the key
    api_error = error.to_api_error()
    assert isinstance(api_error, UpstreamError)
    assert api_error.status == 502
    assert "flagged_input" not in error.metadata
    assert_no_secrets(error)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(502, BadGatewayError), (503, ProviderUnavailableError), (500, ServerError), (408, RequestTimeoutError)],
)
async def test_retryable_statuses_are_retried_then_succeed(
    fake: FakeOpenRouter, client: OpenRouterClient, status: int, error_type: type[OpenRouterError]
) -> None:
    fake.script(Status(status), Reply(chunks=["recovered"]))
    result = done(await read_all(client)).result
    assert result.text == "recovered"
    assert len(fake.chat_requests) == 2
    assert error_type.retryable


async def test_retries_are_bounded(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Status(503), Status(503), Status(503), Reply(chunks=["too late"]))
    with pytest.raises(ProviderUnavailableError) as caught:
        await read_all(client)
    assert caught.value.attempts == 3  # the first try and two retries
    assert len(fake.chat_requests) == 3


async def test_retry_budget_stops_retrying(fake: FakeOpenRouter) -> None:
    # GIVEN a budget shorter than the Retry-After
    policy = RetryPolicy(max_retries=5, base_delay=0.01, max_retry_after=5.0, budget=0.5)
    fake.script(Status(429, retry_after=1), Reply(chunks=["no"]))
    async with make_client(fake.base_url, retry=policy) as client:
        with pytest.raises(RateLimitError):
            await read_all(client)
    assert len(fake.chat_requests) == 1


async def test_error_chunk_before_first_token_is_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN HTTP 200 whose first event is an error chunk, then a good reply
    fake.script(MidStreamError(after_chunks=[], code=502, message="provider failed"), Reply(chunks=["fine"]))
    events = await read_all(client)
    # THEN it counts as an error before the first token: retried, nothing of it reaches the caller
    assert texts(events) == ["fine"]
    assert len(fake.chat_requests) == 2


async def test_error_chunk_before_first_token_with_client_error_code(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(MidStreamError(after_chunks=[], code=400, message="context too long"), Reply(chunks=["x"]))
    with pytest.raises(BadRequestError):
        await read_all(client)
    assert len(fake.chat_requests) == 1


# -- errors after the first token ----------------------------------------------------------------------


async def test_error_chunk_mid_stream_raises_with_the_partial_reply(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # GIVEN text, then an error chunk under HTTP 200
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "cost": 0.0001}
    fake.script(
        MidStreamError(
            after_chunks=["Hel", "lo"], code=502, message="provider failed", served_model="x/y", usage=usage
        )
    )
    received: list[str] = []
    with pytest.raises(ClientMidStreamError) as caught:
        async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    received.append(event.text)
    # THEN the caller relayed the text, and the error carries it with what is known for billing
    error = caught.value
    assert received == ["Hel", "lo"]
    assert error.partial_text == "Hello"
    assert error.model == "x/y"
    assert error.usage is not None
    assert error.usage.cost == 0.0001
    assert error.generation_id == fake.chat_requests[0].generation_id
    assert error.status == 502
    assert "provider failed" in error.message
    assert not error.retryable
    assert error.to_api_error().status == 502
    # never retried after text
    assert len(fake.chat_requests) == 1


# -- closing and cancelling stop the upstream ----------------------------------------------------------


async def test_closing_the_stream_midway_closes_the_upstream_connection(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Infinite(chunk="word ", interval=0.02))
    async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
        seen = 0
        async for event in stream:
            seen += isinstance(event, TextDelta)
            if seen == 3:
                break
        closed_at = time.monotonic()
        await stream.aclose()
        assert stream.partial.text == "word word word "
    record = await fake.wait_for_disconnect(within=2.0)
    assert record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 1.0


async def test_leaving_async_with_closes_the_upstream_connection(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Infinite(chunk="w ", interval=0.02))
    async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        left_at = time.monotonic()
    record = await fake.wait_for_disconnect(within=2.0)
    assert record.disconnected_at is not None
    assert record.disconnected_at - left_at < 1.0


async def test_cancellation_while_reading_closes_the_upstream_connection(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # GIVEN a consumer blocked in a read (the stream stalls after one chunk), without `async with`
    fake.script(Stall(after_chunks=["Hel"]))
    stream = client.stream_chat("openai/gpt-4o-mini", MESSAGES)
    got_text = anyio.Event()

    async def consume() -> None:
        async for event in stream:
            if isinstance(event, TextDelta):
                got_text.set()

    # WHEN its task is cancelled mid-read
    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await got_text.wait()
        await anyio.sleep(0.05)
        cancelled_at = time.monotonic()
        group.cancel_scope.cancel()
    # THEN the upstream connection was closed by the cancellation itself
    record = await fake.wait_for_disconnect(within=2.0)
    assert record.disconnected_at is not None
    assert record.disconnected_at - cancelled_at < 1.0
    assert stream.partial.text == "Hel"


async def test_cancellation_of_an_infinite_stream(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Infinite(chunk="a", interval=0.01))
    with anyio.move_on_after(0.3):
        async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
            async for _event in stream:
                pass
    cancelled_at = time.monotonic()
    record = await fake.wait_for_disconnect(within=2.0)
    assert record.disconnected_at is not None
    assert record.disconnected_at - cancelled_at < 1.0


# -- timeouts -------------------------------------------------------------------------------------------


async def test_first_token_timeout_ignores_keepalives_and_is_not_retried(fake: FakeOpenRouter) -> None:
    # GIVEN upstream sends headers and keep-alive comments but never a token
    fake.script(Hang(before_first_token=True, keepalive_interval=0.1), Reply(chunks=["never"]))
    timeouts = StreamTimeouts(connect=2.0, first_token=0.5, idle=5.0)
    events: list[StreamEvent] = []
    started = time.monotonic()
    async with make_client(fake.base_url, timeouts=timeouts) as client:
        with pytest.raises(FirstTokenTimeoutError) as caught:
            async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
                async for event in stream:
                    events.append(event)
    # THEN comments came through but did not count as a token; one request only
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.5
    assert events
    assert all(isinstance(event, KeepAlive) for event in events)
    assert len(fake.chat_requests) == 1
    api_error = caught.value.to_api_error()
    assert isinstance(api_error, GatewayTimeoutError)
    assert (api_error.status, api_error.code) == (504, "UPSTREAM_TIMEOUT")
    await fake.wait_for_disconnect(within=2.0)


async def test_first_token_timeout_when_no_headers_arrive(fake: FakeOpenRouter) -> None:
    fake.script(Hang(before_first_token=False))
    timeouts = StreamTimeouts(connect=2.0, first_token=0.3, idle=5.0)
    async with make_client(fake.base_url, timeouts=timeouts) as client:
        with pytest.raises(FirstTokenTimeoutError):
            await read_all(client)
    await fake.wait_for_disconnect(within=2.0)


async def test_idle_timeout_after_the_first_token_carries_the_partial_text(fake: FakeOpenRouter) -> None:
    fake.script(Stall(after_chunks=["Hel", "lo"], served_model="x/y"))
    timeouts = StreamTimeouts(connect=2.0, first_token=5.0, idle=0.3)
    received: list[str] = []
    async with make_client(fake.base_url, timeouts=timeouts) as client:
        with pytest.raises(IdleTimeoutError) as caught:
            async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        received.append(event.text)
    assert received == ["Hel", "lo"]
    assert caught.value.partial_text == "Hello"
    assert caught.value.model == "x/y"
    assert caught.value.to_api_error().status == 504
    assert len(fake.chat_requests) == 1
    await fake.wait_for_disconnect(within=2.0)


async def test_keepalives_reset_the_idle_timeout(fake: FakeOpenRouter) -> None:
    # GIVEN a stream that goes quiet after one chunk but keeps sending comments faster than the idle timeout
    fake.script(Stall(after_chunks=["Hel"], keepalive_interval=0.1))
    timeouts = StreamTimeouts(connect=2.0, first_token=5.0, idle=0.35)
    keepalives = 0
    async with (
        make_client(fake.base_url, timeouts=timeouts) as client,
        client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream,
    ):
        started = time.monotonic()
        async for event in stream:
            keepalives += isinstance(event, KeepAlive)
            if time.monotonic() - started > 0.9:
                break
    # THEN no idle timeout fired during three times the idle timeout
    assert keepalives >= 5


# -- connection failures -------------------------------------------------------------------------------


async def test_connection_refused_after_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}/api/v1") as client:
        with pytest.raises(UpstreamConnectionError) as caught:
            await read_all(client)
        with pytest.raises(UpstreamConnectionError):
            await client.complete("openai/gpt-4o-mini", MESSAGES)
    assert caught.value.attempts == 3
    assert caught.value.to_api_error().status == 502
    assert_no_secrets(caught.value)


async def test_connection_dropped_before_the_first_token_is_retried(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Drop(after_chunks=[]), Reply(chunks=["second try"]))
    assert texts(await read_all(client)) == ["second try"]
    assert len(fake.chat_requests) == 2


async def test_connection_dropped_after_text_is_a_mid_stream_error(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script(Drop(after_chunks=["Hel", "lo"], served_model="x/y"), Reply(chunks=["never"]))
    received: list[str] = []
    with pytest.raises(ClientMidStreamError) as caught:
        async with client.stream_chat("openai/gpt-4o-mini", MESSAGES) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    received.append(event.text)
    assert received == ["Hel", "lo"]
    assert caught.value.partial_text == "Hello"
    assert caught.value.model == "x/y"
    assert len(fake.chat_requests) == 1


# -- headers and secrets ----------------------------------------------------------------------------------


async def test_headers_are_sent(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script(Reply(chunks=["x"]))
    await read_all(client)
    headers = fake.chat_requests[0].headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["http-referer"] == "https://oneai.test"
    assert headers["x-title"] == "OneAI Test"
    assert headers["accept"] == "text/event-stream"


async def test_the_key_is_never_in_an_exception(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    # GIVEN an upstream message that echoes the key
    fake.script(Status(401, message=f"Invalid key {API_KEY} for {PROMPT[:0]}user"))
    with pytest.raises(AuthenticationError) as caught:
        await read_all(client)
    assert "[redacted]" in caught.value.message
    assert_no_secrets(caught.value)
    assert API_KEY not in repr(client)


# -- the model catalog ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_models_list_parses_prices_and_modalities(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    models = {model.id: model for model in await client.list_models()}
    mini = models["openai/gpt-4o-mini"]
    assert mini.pricing.prompt == Decimal("0.00000015")
    assert mini.pricing.completion == Decimal("0.0000006")
    assert mini.context_length == 128_000
    assert "image" in mini.input_modalities
    # router models list -1: unknown, never negative
    auto = models["openrouter/auto"]
    assert auto.pricing.prompt is None
    assert auto.pricing.completion is None
    assert not auto.price_known
    assert models["google/gemini-2.5-flash-image-preview"].generates_images
    assert "offline" in models["oneai/offline"].name.lower()
    assert await client.get_model("anthropic/claude-3.5-haiku") is not None


async def test_models_are_cached_with_a_ttl_and_stale_on_failure(fake: FakeOpenRouter) -> None:
    clock = FakeClock()
    async with make_client(fake.base_url, models_ttl=3600, models_retry_interval=60, clock=clock) as client:
        # GIVEN a first fetch
        first = await client.list_models()
        # WHEN asked again within the TTL THEN no request is made
        clock.now += 3599
        assert await client.list_models() == first
        assert len(fake.models_requests) == 1
        # WHEN the TTL passed and the refresh fails THEN the stale list is served
        fake.script_models(Status(503))
        clock.now += 2
        assert await client.list_models() == first
        assert len(fake.models_requests) == 2
        # and the refresh is not tried again before the retry interval
        clock.now += 30
        assert await client.list_models() == first
        assert len(fake.models_requests) == 2
        # WHEN the retry interval passed THEN it refreshes
        fake.script_models(ModelsReply([{"id": "new/model", "name": "New", "pricing": {"prompt": "0.000001"}}]))
        clock.now += 31
        refreshed = await client.list_models()
        assert [model.id for model in refreshed] == ["new/model"]
        assert len(fake.models_requests) == 3
        # and is cached again
        assert await client.list_models() == refreshed
        assert len(fake.models_requests) == 3


async def test_models_failure_without_a_cache_raises(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_models(Status(401), ModelsReply([]))
    with pytest.raises(AuthenticationError):
        await client.list_models()
    assert len(fake.models_requests) == 1


async def test_cost_falls_back_to_prices_and_is_never_negative(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    models = {model.id: model for model in await client.list_models()}
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100)
    assert cost_of(usage, models["openai/gpt-4o-mini"]) == Decimal("0.00015") + Decimal("0.00006")
    assert cost_of(usage, models["openrouter/auto"]) == Decimal(0)
    assert cost_of(usage, None) == Decimal(0)
    assert cost_of(None, models["openai/gpt-4o-mini"]) == Decimal(0)
    negative = Usage(prompt_tokens=10, completion_tokens=10, total_tokens=20, cost=-1.0)
    assert cost_of(negative, models["openrouter/auto"]) == Decimal(0)
    assert cost_of(Usage(cost=0.5), models["openai/gpt-4o-mini"]) == Decimal("0.5")


# -- pure helpers (no socket) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"id": "a", "pricing": {"prompt": "-1", "completion": "-1"}}, (None, None)),
        ({"id": "a", "pricing": {"prompt": "abc", "completion": None}}, (None, None)),
        ({"id": "a"}, (None, None)),
        ({"id": "a", "pricing": {"prompt": "0", "completion": 0.000002}}, (Decimal(0), Decimal("0.000002"))),
        ({"id": "a", "pricing": {"prompt": "NaN", "completion": "-0.5"}}, (None, None)),
    ],
)
def test_price_parsing(raw: dict[str, Any], expected: tuple[Decimal | None, Decimal | None]) -> None:
    model = OpenRouterModel.model_validate(raw)
    assert (model.pricing.prompt, model.pricing.completion) == expected


def test_modalities_from_legacy_fields() -> None:
    model = OpenRouterModel.model_validate({"id": "a", "architecture": {"modality": "text+image->text+image"}})
    assert model.modalities == {"input": ["text", "image"], "output": ["text", "image"]}
    model = OpenRouterModel.model_validate({"id": "b", "modalities": ["text"]})
    assert model.modalities == {"input": ["text"], "output": ["text"]}


def test_status_map() -> None:
    assert isinstance(error_for_status(504), ServerError)
    assert isinstance(error_for_status(418), OpenRouterError)
    assert not error_for_status(418).retryable
    assert isinstance(error_for_code("server_error"), BadGatewayError)
    assert isinstance(error_for_code("429"), RateLimitError)
    assert isinstance(error_for_code(None), BadGatewayError)


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_chunks_ignore_unknown_keys() -> None:
    chunk = ChatChunk.model_validate_json(
        '{"id":"gen-1","provider":"P","model":"m","object":"chat.completion.chunk","created":1,'
        '"choices":[{"index":0,"delta":{"role":"assistant","content":"hi","reasoning_details":[]},'
        '"finish_reason":null,"native_finish_reason":null,"logprobs":null}],"system_fingerprint":"x"}'
    )
    assert (chunk.text, chunk.model, chunk.finish_reason) == ("hi", "m", None)
