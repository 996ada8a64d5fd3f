"""Embeddings through OpenRouter's OpenAI-compatible `POST {OPENROUTER_BASE_URL}/embeddings`.

The wire format (OpenRouter's API reference, "Create embeddings"): the request is `{"model", "input"}` with
`input` a string or an array of strings (or token arrays), and optional `encoding_format` ("float" or
"base64"), `dimensions`, `user`, `provider` (routing preferences) and `input_type`. The reply is
`{"id": "embd-...", "object": "list", "model", "data": [{"object": "embedding", "embedding": [...],
"index": i}], "usage": {"prompt_tokens", "total_tokens", "cost"?}}`; errors are the chat API's
`{"error": {"code", "message", "metadata"}}` with the status. We send `encoding_format: "float"` and
`dimensions` (the chunks' column is `vector(1536)`), sort the vectors by `index` (the order of `data` is
not promised), and refuse a reply whose vectors do not fit (`InvalidEmbeddingError`) rather than store it.

Texts are sent in batches (at most `ONEAI_EMBEDDING_BATCH_SIZE` texts and `ONEAI_EMBEDDING_BATCH_CHARS`
characters each; a longer text goes alone), one batch after the other. Each batch is retried like the chat
client's requests (`RetryPolicy`: 408, 429 honouring `Retry-After`, 5xx, broken connections, our own
timeout), never on 400/401/402/403; the budget is widened so a retry may follow attempts that each took
the whole embeddings timeout. The usage (tokens and the `cost` in credits) of every batch is added
up in the result, for the caller to record.

Without an OpenRouter key (`make dev`, the tests) `OPENROUTER_BASE_URL` points at the fake OpenRouter
(`local/fake_openrouter.py`), which answers with the offline embedding (`oneai.knowledge.offline_embedding`):
there is no second offline path here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from oneai.knowledge.offline_embedding import EMBEDDING_DIMENSIONS
from oneai.logging import logger
from oneai.openrouter.client import OpenRouterClient, RetryAttempts, RetryPolicy
from oneai.openrouter.errors import (
    BadGatewayError,
    EmbeddingTimeoutError,
    InvalidEmbeddingError,
    OpenRouterError,
    error_for_code,
)
from oneai.openrouter.types import ChunkError

__all__ = ["EMBEDDING_DIMENSIONS", "EmbeddingResult", "EmbeddingUsage", "OpenRouterEmbeddings", "plan_batches"]


class EmbeddingUsage(BaseModel):
    """What embedding cost: tokens and OpenRouter's `cost` in credits (USD); `cost` is None unless every
    request reported one (a partial sum would under-record)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None

    def plus(self, other: EmbeddingUsage) -> EmbeddingUsage:
        cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        return EmbeddingUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost=cost,
        )


_NO_USAGE_YET = EmbeddingUsage(cost=0.0)  # the neutral start of a sum


class _EmbeddingItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    embedding: list[float]


class _EmbeddingsReply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str | None = None
    data: list[_EmbeddingItem] | None = None
    usage: EmbeddingUsage | None = None
    error: ChunkError | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """`vectors[i]` is the embedding of `texts[i]`. `model` is the model asked for, `served_model` the one
    OpenRouter says answered (of the last batch); `batches` how many requests succeeded."""

    vectors: list[list[float]]
    model: str
    served_model: str | None
    usage: EmbeddingUsage
    batches: int


def plan_batches(texts: Sequence[str], *, max_count: int, max_chars: int) -> list[range]:
    """Consecutive index ranges of at most `max_count` texts and `max_chars` characters (a text longer than
    `max_chars` alone)."""
    batches: list[range] = []
    start, chars = 0, 0
    for index, text in enumerate(texts):
        size = len(text)
        if index > start and (index - start >= max_count or chars + size > max_chars):
            batches.append(range(start, index))
            start, chars = index, 0
        chars += size
    if start < len(texts):
        batches.append(range(start, len(texts)))
    return batches


class OpenRouterEmbeddings:
    """Embeddings with the chat client's connection pool, headers, key, error map and retry policy."""

    def __init__(
        self,
        client: OpenRouterClient,
        *,
        batch_size: int | None = None,
        batch_chars: int | None = None,
        timeout: float | None = None,
        dimensions: int = EMBEDDING_DIMENSIONS,
        retry: RetryPolicy | None = None,
    ) -> None:
        settings = client.settings
        self.client = client
        self.batch_size = batch_size or settings.embedding_batch_size
        self.batch_chars = batch_chars or settings.embedding_batch_chars
        self.timeout = timeout or settings.embedding_timeout_seconds
        self.dimensions = dimensions
        self.default_model = settings.embedding_model
        # The chat's policy, with a budget that lets every retry start even after attempts that each took
        # the whole (longer) embeddings timeout: the chat's 20 s would forbid any retry after one timeout.
        chat = client.retry
        self.retry = retry or replace(chat, budget=max(chat.budget, (chat.max_retries + 1) * self.timeout))

    async def embed(self, texts: Sequence[str], model: str | None = None) -> EmbeddingResult:
        """The embeddings of `texts`, in their order. Raises `ValueError` for an empty text (the API refuses
        them; nothing is sent) and an `OpenRouterError` when a batch fails after its retries."""
        model = model or self.default_model
        for index, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {index} is empty: there is nothing to embed")
        vectors: list[list[float]] = []
        usage = _NO_USAGE_YET
        served_model: str | None = None
        batches = plan_batches(texts, max_count=self.batch_size, max_chars=self.batch_chars)
        for batch in batches:
            reply_vectors, reply = await self._embed_batch([texts[i] for i in batch], model)
            vectors.extend(reply_vectors)
            usage = usage.plus(reply.usage or EmbeddingUsage())
            served_model = reply.model or served_model
        if not batches:
            usage = EmbeddingUsage()
        logger.info(
            "Embedded texts",
            extra={
                "embedding_model": model,
                "texts": len(texts),
                "batches": len(batches),
                "prompt_tokens": usage.prompt_tokens,
                "cost": usage.cost,
            },
        )
        return EmbeddingResult(vectors, model, served_model, usage, len(batches))

    async def _embed_batch(self, texts: list[str], model: str) -> tuple[list[list[float]], _EmbeddingsReply]:
        body: dict[str, Any] = {
            "model": model,
            "input": texts,
            "encoding_format": "float",
            "dimensions": self.dimensions,
        }
        attempts = RetryAttempts(self.retry).begin()
        while True:
            try:
                reply = await self._post(body)
                return self._vectors(reply, len(texts)), reply
            except OpenRouterError as exc:  # raised again at once when not retryable (400-403, bad vectors)
                await attempts.wait_or_raise(exc)

    async def _post(self, body: dict[str, Any]) -> _EmbeddingsReply:
        client = self.client
        response = await client.post_json(
            "/embeddings",
            body,
            reply_seconds=self.timeout,
            timed_out=lambda: EmbeddingTimeoutError(f"No embeddings from OpenRouter within {self.timeout:g} s"),
        )
        try:
            reply = _EmbeddingsReply.model_validate_json(response.content)
        except (ValidationError, ValueError):
            raise BadGatewayError("OpenRouter sent a reply that is not an embeddings list") from None
        if reply.error is not None:  # an error object under HTTP 200
            raise error_for_code(
                reply.error.code, client.sanitize(reply.error.message), metadata=reply.error.metadata
            )
        if reply.data is None:
            raise BadGatewayError("OpenRouter sent an embeddings reply without data")
        return reply

    def _vectors(self, reply: _EmbeddingsReply, count: int) -> list[list[float]]:
        """The vectors in input order, each checked: the right length, finite, not zero."""
        items = sorted(reply.data or (), key=lambda item: item.index)
        if [item.index for item in items] != list(range(count)):
            raise InvalidEmbeddingError(
                f"OpenRouter sent {len(items)} embeddings for {count} texts (indices do not match the input)"
            )
        for item in items:
            if len(item.embedding) != self.dimensions:
                raise InvalidEmbeddingError(
                    f"OpenRouter sent an embedding of {len(item.embedding)} dimensions, {self.dimensions} expected"
                )
            norm = math.hypot(*item.embedding)
            if not math.isfinite(norm) or norm == 0.0:
                raise InvalidEmbeddingError("OpenRouter sent an embedding that is zero or not finite")
        return [item.embedding for item in items]
