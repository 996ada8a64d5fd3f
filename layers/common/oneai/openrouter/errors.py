"""Typed OpenRouter failures and the one map from an upstream status (or stream error code) to them.

`OpenRouterError.retryable` says whether another attempt can help (rate limits, timeouts reported by
OpenRouter, provider and gateway failures, broken connections) - never for a bad request, a bad key, no
credits or a moderation block. The client retries only before the first token.

Messages are for logs and operators: they carry the upstream status and a shortened upstream message,
never the API key, never the prompt (moderation metadata's `flagged_input` and provider `raw` bodies are
dropped). `to_api_error()` gives the project's error for the client, with a generic message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from oneai.errors import OneAIError, UpstreamError
from oneai.openrouter.types import StreamResult, Usage

__all__ = [
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "EmbeddingTimeoutError",
    "FirstTokenTimeoutError",
    "GatewayTimeoutError",
    "IdleTimeoutError",
    "InsufficientCreditsError",
    "InvalidEmbeddingError",
    "MidStreamError",
    "ModerationError",
    "OpenRouterError",
    "PartialStreamError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "UpstreamConnectionError",
    "error_for_code",
    "error_for_status",
    "parse_retry_after",
    "sanitize_message",
]

MAX_MESSAGE_CHARS = 300
# Metadata keys that are safe to keep (no prompt text, no provider body).
_SAFE_METADATA_KEYS = frozenset({"provider_name", "model_slug", "reasons", "limit_source"})
# String codes seen in stream `error` objects, mapped to the status they stand for.
_STRING_CODES = {
    "rate_limit_exceeded": 429,
    "rate_limited": 429,
    "timeout": 408,
    "request_timeout": 408,
    "server_error": 502,
    "provider_error": 502,
    "service_unavailable": 503,
    "overloaded": 503,
    "invalid_request_error": 400,
    "content_filter": 403,
    "moderation": 403,
    "insufficient_quota": 402,
}


class GatewayTimeoutError(OneAIError):
    """API error: the model provider took too long (before the first token, or went silent after it)."""

    status, code, default_message = 504, "UPSTREAM_TIMEOUT", "The model provider did not answer in time"


class OpenRouterError(Exception):
    """Base of every OpenRouter failure.

    `status` is the upstream HTTP status (or what a stream error code stands for), None for failures that
    never got a status (connection, our own timeouts). `retry_after` is the parsed `Retry-After` header
    (seconds) when the response had one. `attempts` is how many requests were made in all.
    """

    default_status: ClassVar[int | None] = None
    default_message: ClassVar[str] = "OpenRouter request failed"
    retryable: ClassVar[bool] = False
    api_message: ClassVar[str] = "The model provider failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status if status is not None else self.default_status
        self.message = sanitize_message(message) or self.default_message
        self.code = code
        self.retry_after = retry_after
        self.metadata = {k: v for k, v in (metadata or {}).items() if k in _SAFE_METADATA_KEYS}
        self.attempts = 1
        prefix = f"OpenRouter {self.status}: " if self.status is not None else "OpenRouter: "
        super().__init__(prefix + self.message)

    def api_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"retryable": self.retryable}
        if self.status is not None:
            details["upstream_status"] = self.status
        provider = self.metadata.get("provider_name")
        if isinstance(provider, str):
            details["provider"] = provider
        return details

    def to_api_error(self) -> OneAIError:
        """The project error to answer the client with (502, or 504 for timeouts)."""
        return UpstreamError(self.api_message, details=self.api_details())


class BadRequestError(OpenRouterError):
    default_status, default_message = 400, "Bad request"


class AuthenticationError(OpenRouterError):
    default_status, default_message = 401, "Invalid or missing OpenRouter credentials"
    api_message = "The model provider is not configured correctly"


class InsufficientCreditsError(OpenRouterError):
    default_status, default_message = 402, "Insufficient OpenRouter credits"
    api_message = "The model provider is not available right now"


class ModerationError(OpenRouterError):
    default_status, default_message = 403, "Blocked by moderation or guardrail"
    api_message = "The model provider refused this request"

    def api_details(self) -> dict[str, Any]:
        details = super().api_details()
        reasons = self.metadata.get("reasons")
        if isinstance(reasons, list) and all(isinstance(r, str) for r in reasons):
            details["reasons"] = reasons
        return details


class RequestTimeoutError(OpenRouterError):
    default_status, default_message = 408, "OpenRouter reported a request timeout"
    retryable = True
    api_message = GatewayTimeoutError.default_message

    def to_api_error(self) -> OneAIError:
        return GatewayTimeoutError(self.api_message, details=self.api_details())


class RateLimitError(OpenRouterError):
    default_status, default_message = 429, "Rate limited by OpenRouter"
    retryable = True
    api_message = "The model provider is busy, please try again shortly"

    def api_details(self) -> dict[str, Any]:
        details = super().api_details()
        if self.retry_after is not None:
            details["retry_after"] = math.ceil(self.retry_after)
        return details


class BadGatewayError(OpenRouterError):
    default_status, default_message = 502, "The model or its provider failed"
    retryable = True


class ProviderUnavailableError(OpenRouterError):
    default_status, default_message = 503, "No provider available for this model"
    retryable = True


class ServerError(OpenRouterError):
    default_status, default_message = 500, "OpenRouter server error"
    retryable = True


class EmbeddingTimeoutError(OpenRouterError):
    """An embeddings request got no whole reply in time. Retried: nobody is watching an ingest wait."""

    default_message = "No embeddings from OpenRouter in time"
    retryable = True
    api_message = GatewayTimeoutError.default_message

    def to_api_error(self) -> OneAIError:
        return GatewayTimeoutError(self.api_message, details=self.api_details())


class InvalidEmbeddingError(OpenRouterError):
    """An embeddings reply that cannot be stored: vectors of the wrong length, missing or repeated indices,
    non-finite numbers. Not retried: the same model would answer the same way."""

    default_status, default_message = 502, "OpenRouter sent embeddings that do not fit"


class UpstreamConnectionError(OpenRouterError):
    default_message = "Could not reach OpenRouter"
    retryable = True


class FirstTokenTimeoutError(OpenRouterError):
    """No token arrived in time (keep-alive comments do not count). Not retried: the user already waited."""

    default_message = "No token from the model in time"
    api_message = GatewayTimeoutError.default_message

    def to_api_error(self) -> OneAIError:
        return GatewayTimeoutError(self.api_message, details=self.api_details())


class PartialStreamError(OpenRouterError):
    """A failure after text was relayed: carries what the stream produced so far."""

    def __init__(
        self,
        message: str | None = None,
        *,
        partial: StreamResult,
        status: int | None = None,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, metadata=metadata)
        self.partial = partial

    @property
    def partial_text(self) -> str:
        return self.partial.text

    @property
    def usage(self) -> Usage | None:
        return self.partial.usage

    @property
    def model(self) -> str | None:
        """The model that served the partial reply."""
        return self.partial.model

    @property
    def generation_id(self) -> str | None:
        return self.partial.generation_id


class IdleTimeoutError(PartialStreamError):
    """The stream went silent for longer than the idle timeout after the first token."""

    default_message = "The model stream went silent"
    api_message = GatewayTimeoutError.default_message

    def to_api_error(self) -> OneAIError:
        return GatewayTimeoutError(self.api_message, details=self.api_details())


class MidStreamError(PartialStreamError):
    """An `error` chunk (HTTP 200, `finish_reason: "error"`) or a broken stream after text was received."""

    default_message = "The model stream failed after it started"


_STATUS_MAP: dict[int, type[OpenRouterError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: ModerationError,
    408: RequestTimeoutError,
    429: RateLimitError,
    502: BadGatewayError,
    503: ProviderUnavailableError,
}


def error_for_status(
    status: int,
    message: str | None = None,
    *,
    code: int | str | None = None,
    metadata: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> OpenRouterError:
    """The one status-to-exception map (other 5xx: `ServerError`; other statuses: the base class)."""
    cls = _STATUS_MAP.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else OpenRouterError
    return cls(message, status=status, code=code, metadata=metadata, retry_after=retry_after)


def status_for_code(code: int | str | None) -> int:
    """The HTTP status an `error.code` stands for: numbers are statuses; known strings are mapped; 502 else."""
    if isinstance(code, int) and 100 <= code <= 599:
        return code
    if isinstance(code, str):
        text = code.strip()
        if text.isdigit() and 100 <= int(text) <= 599:
            return int(text)
        return _STRING_CODES.get(text.lower(), 502)
    return 502


def error_for_code(
    code: int | str | None, message: str | None = None, *, metadata: dict[str, Any] | None = None
) -> OpenRouterError:
    """An `error` object received under HTTP 200 (in a stream, or a non-streaming body) before any text."""
    return error_for_status(status_for_code(code), message, code=code, metadata=metadata)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds (fractions tolerated) or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def sanitize_message(message: str | None, *, secrets: tuple[str, ...] = ()) -> str:
    """One line, shortened, with any secret (the API key) replaced."""
    if not message:
        return ""
    text = " ".join(str(message).split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text
