"""Embeddings through the OpenRouter client against the fake OpenRouter over a real socket (no database)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from local.fake_openrouter import Drop, EmbeddingsReply, FakeOpenRouter, Hang, Status
from oneai.config import Settings
from oneai.knowledge.offline_embedding import cosine, offline_embedding
from oneai.openrouter import (
    AuthenticationError,
    BadRequestError,
    EmbeddingTimeoutError,
    EmbeddingUsage,
    InsufficientCreditsError,
    InvalidEmbeddingError,
    ModerationError,
    OpenRouterClient,
    OpenRouterEmbeddings,
    OpenRouterError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UpstreamConnectionError,
)
from tests.integration.test_openrouter_client import API_KEY, FAST_RETRY, make_client

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

TEXTS = [
    "Refunds are issued within 14 days of the returned parcel reaching our warehouse.",
    "The quarterly board meeting approved the new office lease in Berlin.",
    "Orders ship from Mumbai by courier; international delivery takes five to eight working days.",
    "Our support desk answers by email on weekdays between nine and six.",
    "Gift cards cannot be exchanged for cash.",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@pytest.fixture
def fake(upstream: FakeOpenRouter) -> Iterator[FakeOpenRouter]:
    """The module's fake OpenRouter, without scripts or records from other tests."""
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
async def client(fake: FakeOpenRouter) -> AsyncIterator[OpenRouterClient]:
    async with make_client(fake.base_url) as openrouter:
        yield openrouter


def embeddings(client: OpenRouterClient, **kwargs: Any) -> OpenRouterEmbeddings:
    return OpenRouterEmbeddings(client, **kwargs)


# -- the normal path ---------------------------------------------------------------------------------


async def test_vectors_come_back_in_input_order_across_batches(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # GIVEN batches of two, the fake answering each batch's `data` in reverse order
    fake.script_embeddings(
        EmbeddingsReply(reverse=True), EmbeddingsReply(reverse=True), EmbeddingsReply(reverse=True)
    )
    result = await embeddings(client, batch_size=2).embed(TEXTS)
    # THEN three requests were made and every vector is the one of its own text
    assert result.batches == 3
    assert [r.body["input"] for r in fake.embeddings_requests] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
    assert result.vectors == [offline_embedding(text) for text in TEXTS]
    # AND the request is OpenRouter's: model, input, float encoding, 1536 dimensions, the key as Bearer
    request = fake.embeddings_requests[0]
    assert request.body == {
        "model": "openai/text-embedding-3-small",
        "input": TEXTS[0:2],
        "encoding_format": "float",
        "dimensions": 1536,
    }
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.path.endswith("/api/v1/embeddings")


async def test_usage_and_cost_are_summed_over_batches(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    result = await embeddings(client, batch_size=2).embed(TEXTS)
    expected_tokens = sum(len(text) // 4 for text in TEXTS)  # the fake's tokenizer: 4 characters a token
    assert result.usage.prompt_tokens == expected_tokens
    assert result.usage.total_tokens == expected_tokens
    assert result.usage.cost == pytest.approx(expected_tokens * 0.00000002)
    assert result.served_model == "openai/text-embedding-3-small"
    assert isinstance(result.usage, EmbeddingUsage)
    assert result.usage.model_dump() == {
        "prompt_tokens": expected_tokens,
        "total_tokens": expected_tokens,
        "cost": pytest.approx(expected_tokens * 0.00000002),
    }


async def test_cost_is_unknown_when_a_batch_did_not_report_one(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script_embeddings(EmbeddingsReply(), EmbeddingsReply(usage={"prompt_tokens": 7, "total_tokens": 7}))
    result = await embeddings(client, batch_size=3).embed(TEXTS)
    assert result.usage.cost is None
    assert result.usage.prompt_tokens == sum(len(t) // 4 for t in TEXTS[:3]) + 7


async def test_batches_are_cut_by_characters_too(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    long_text = "warehouse " * 30  # 300 characters: alone in its batch under a 250-character budget
    texts = ["short one", long_text, "short two", "short three"]
    result = await embeddings(client, batch_size=10, batch_chars=250).embed(texts)
    assert [r.body["input"] for r in fake.embeddings_requests] == [texts[0:1], texts[1:2], texts[2:4]]
    assert result.vectors == [offline_embedding(text) for text in texts]


async def test_search_with_the_offline_vectors_makes_sense(client: OpenRouterClient) -> None:
    # The offline model through the client: a question's nearest passage is the one that answers it.
    service = embeddings(client)
    passages = (await service.embed(TEXTS)).vectors
    [query] = (await service.embed(["how many days until a refund is issued"])).vectors
    best = max(range(len(TEXTS)), key=lambda i: cosine(query, passages[i]))
    assert best == 0


async def test_nothing_to_embed_sends_nothing(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    result = await embeddings(client).embed([])
    assert (result.vectors, result.batches, result.usage.prompt_tokens) == ([], 0, 0)
    assert fake.embeddings_requests == []


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
async def test_an_empty_text_is_refused_before_any_request(
    fake: FakeOpenRouter, client: OpenRouterClient, blank: str
) -> None:
    with pytest.raises(ValueError, match="text 1 is empty"):
        await embeddings(client).embed(["fine", blank])
    assert fake.embeddings_requests == []


async def test_nul_bytes_and_non_ascii_travel_intact(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    texts = ["refund\x00policy", "日本語 — ünïcödé"]
    result = await embeddings(client).embed(texts)
    assert fake.embeddings_requests[0].body["input"] == texts
    assert result.vectors == [offline_embedding(text) for text in texts]


# -- retries -----------------------------------------------------------------------------------------


async def test_429_with_retry_after_is_waited_then_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(Status(429, retry_after=1))
    started = time.monotonic()
    result = await embeddings(client).embed(TEXTS[:2])
    assert time.monotonic() - started >= 0.95  # the Retry-After second was honoured
    assert len(fake.embeddings_requests) == 2
    assert result.vectors == [offline_embedding(text) for text in TEXTS[:2]]


@pytest.mark.parametrize("status", [408, 500, 502, 503])
async def test_transient_statuses_are_retried(fake: FakeOpenRouter, client: OpenRouterClient, status: int) -> None:
    fake.script_embeddings(Status(status), Status(status))
    result = await embeddings(client).embed(TEXTS[:1])
    assert len(fake.embeddings_requests) == 3
    assert len(result.vectors) == 1


async def test_a_dropped_connection_is_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(Drop())
    result = await embeddings(client).embed(TEXTS[:1])
    assert len(fake.embeddings_requests) == 2
    assert len(result.vectors) == 1


async def test_retries_end_with_the_last_error(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(Status(500), Status(500), Status(500))
    with pytest.raises(ServerError) as caught:
        await embeddings(client).embed(TEXTS[:1])
    assert caught.value.attempts == 3
    assert len(fake.embeddings_requests) == 3


async def test_a_retry_after_beyond_the_cap_is_not_waited(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(Status(429, retry_after=60))
    with pytest.raises(RateLimitError) as caught:
        await embeddings(client).embed(TEXTS[:1])
    assert caught.value.retry_after == 60
    assert len(fake.embeddings_requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, ModerationError),
    ],
)
async def test_client_errors_are_not_retried(
    fake: FakeOpenRouter, client: OpenRouterClient, status: int, error: type[OpenRouterError]
) -> None:
    fake.script_embeddings(Status(status))
    with pytest.raises(error) as caught:
        await embeddings(client).embed(TEXTS[:1])
    assert caught.value.status == status
    assert len(fake.embeddings_requests) == 1
    assert API_KEY not in str(caught.value)


async def test_an_unknown_model_is_a_400(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    with pytest.raises(BadRequestError, match="not a valid embedding model"):
        await embeddings(client).embed(TEXTS[:1], model="openai/gpt-4o-mini")


async def test_a_failed_batch_fails_the_call_after_earlier_batches(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake.script_embeddings(EmbeddingsReply(), Status(401))
    with pytest.raises(AuthenticationError):
        await embeddings(client, batch_size=2).embed(TEXTS)
    assert len(fake.embeddings_requests) == 2


# -- timeouts ----------------------------------------------------------------------------------------


async def test_a_silent_upstream_times_out_and_is_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(Hang(before_first_token=False))
    started = time.monotonic()
    result = await embeddings(client, timeout=0.5).embed(TEXTS[:1])
    assert 0.45 <= time.monotonic() - started < 3.0
    assert len(fake.embeddings_requests) == 2
    assert len(result.vectors) == 1


async def test_a_timeout_longer_than_the_chat_retry_budget_is_still_retried(fake: FakeOpenRouter) -> None:
    # GIVEN the chat's retry budget (0.5 s here, 20 s in production) shorter than one embeddings timeout
    chat_policy = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, budget=0.5)
    settings = Settings(openrouter_api_key=SecretStr(API_KEY), openrouter_base_url=fake.base_url)
    fake.script_embeddings(Hang(before_first_token=False))
    async with OpenRouterClient(settings, retry=chat_policy) as chat_client:
        # WHEN the first attempt times out after the whole embeddings timeout
        result = await embeddings(chat_client, timeout=0.7).embed(TEXTS[:1])
    # THEN it was retried anyway, and the batch succeeded
    assert len(fake.embeddings_requests) == 2
    assert len(result.vectors) == 1


async def test_a_slow_answer_within_the_timeout_is_fine(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(EmbeddingsReply(delay=0.3))
    result = await embeddings(client, timeout=2.0).embed(TEXTS[:1])
    assert len(fake.embeddings_requests) == 1
    assert len(result.vectors) == 1


async def test_every_attempt_timing_out_is_a_timeout_error(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(*[EmbeddingsReply(delay=1.0)] * 3)
    with pytest.raises(EmbeddingTimeoutError) as caught:
        await embeddings(client, timeout=0.3).embed(TEXTS[:1])
    assert caught.value.attempts == 3
    assert caught.value.to_api_error().status == 504


# -- replies that must not be stored --------------------------------------------------------------------


async def test_wrong_dimensions_are_an_error_not_stored(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(EmbeddingsReply(dimensions=1024))
    with pytest.raises(InvalidEmbeddingError, match="1024 dimensions, 1536 expected"):
        await embeddings(client).embed(TEXTS[:2])
    assert len(fake.embeddings_requests) == 1  # the same model would answer the same: no retry


async def test_a_missing_vector_is_an_error(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script_embeddings(EmbeddingsReply(drop_last=True))
    with pytest.raises(InvalidEmbeddingError, match="2 embeddings for 3 texts"):
        await embeddings(client).embed(TEXTS[:3])


async def test_an_unreadable_reply_is_a_bad_gateway_retried(
    fake: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # A reply that is not JSON (a proxy's HTML page under 200) fails like a 502 and is retried.
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, text="<html>oops</html>")
        vectors = [offline_embedding(t) for t in TEXTS[:1]]
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": vectors[0]}]})

    settings = Settings(openrouter_api_key=SecretStr(API_KEY), openrouter_base_url="http://upstream.test/api/v1")
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        OpenRouterClient(settings, http=http, retry=FAST_RETRY) as mocked,
    ):
        result = await embeddings(mocked).embed(TEXTS[:1])
    assert calls == 2
    assert result.usage.cost is None  # no usage in the reply: the cost is unknown, not zero


async def test_an_error_object_under_200_is_mapped_and_retried_when_transient() -> None:
    # OpenRouter may answer 200 with `{"error": {...}}`: a 429 there is retried, a 400 is not.
    bodies = [
        {"error": {"code": 429, "message": "slow down"}},
        {"data": [{"index": 0, "embedding": offline_embedding(TEXTS[0])}], "usage": {"prompt_tokens": 3}},
        {"error": {"code": 400, "message": "input too long"}},
    ]
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=bodies[len(requests) - 1])

    settings = Settings(openrouter_api_key=SecretStr(API_KEY), openrouter_base_url="http://upstream.test/api/v1")
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        OpenRouterClient(settings, http=http, retry=FAST_RETRY) as mocked,
    ):
        result = await embeddings(mocked).embed(TEXTS[:1])
        assert result.vectors == [offline_embedding(TEXTS[0])]
        with pytest.raises(BadRequestError, match="input too long"):
            await embeddings(mocked).embed(TEXTS[:1])
    assert len(requests) == 3


@pytest.mark.parametrize(
    "numbers",
    [",".join(["0.0"] * 1536), ",".join(["1e400"] + ["0.5"] * 1535)],  # all zero; a number beyond float
    ids=["zero", "infinite"],
)
async def test_non_finite_or_zero_vectors_are_refused(numbers: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = '{"data": [{"index": 0, "embedding": [' + numbers + "]}]}"
        return httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"})

    settings = Settings(openrouter_api_key=SecretStr(API_KEY), openrouter_base_url="http://upstream.test/v1")
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        OpenRouterClient(settings, http=http, retry=FAST_RETRY) as mocked,
    ):
        with pytest.raises(InvalidEmbeddingError, match="zero or not finite"):
            await embeddings(mocked).embed(TEXTS[:1])


async def test_an_unreachable_upstream_is_a_connection_error(fake: FakeOpenRouter) -> None:
    settings = Settings(openrouter_api_key=SecretStr(API_KEY), openrouter_base_url="http://127.0.0.1:9/api/v1")
    async with OpenRouterClient(settings, retry=FAST_RETRY) as unreachable:
        with pytest.raises(UpstreamConnectionError) as caught:
            await embeddings(unreachable).embed(TEXTS[:1])
    assert caught.value.attempts == 3


# -- offline: `make dev` without a key -----------------------------------------------------------------


async def test_without_a_key_make_dev_embeds_with_the_offline_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from local.__main__ import prepare_openrouter

    # GIVEN `make dev`'s start without OPENROUTER_API_KEY
    # (set first so that what prepare_openrouter writes to os.environ is undone after the test)
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "ONEAI_TITLE_MODEL"):
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    offline = prepare_openrouter()
    assert offline is not None
    try:
        # WHEN the settings of the environment it prepared are used, as the functions use them
        settings = Settings()
        assert settings.openrouter_base_url == offline.base_url
        async with OpenRouterClient(settings, retry=FAST_RETRY) as client:
            result = await OpenRouterEmbeddings(client).embed(TEXTS[:2])
    finally:
        offline.stop()
    # THEN the default model was asked for, and the fake answered with the offline embedding
    assert [r.body["model"] for r in offline.embeddings_requests] == ["openai/text-embedding-3-small"]
    assert result.vectors == [offline_embedding(text) for text in TEXTS[:2]]
    assert result.usage.cost is not None
