"""Domain errors. Each carries the HTTP status and code of the error table in docs/api/index.md; the web layer
maps them to the one error envelope in one place (`oneai.web.errors`)."""

from __future__ import annotations

from typing import Any, ClassVar


class OneAIError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "Something went wrong on our side"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class BadRequestError(OneAIError):
    status, code, default_message = 400, "BAD_REQUEST", "The request could not be read"


class UnauthorizedError(OneAIError):
    status, code, default_message = 401, "UNAUTHORIZED", "A valid access token is required"


class PlanLimitError(OneAIError):
    """A workspace limit of its owner's tier is reached; `details`: `limit`, `used`, `tier`."""

    status, code, default_message = 402, "PLAN_LIMIT", "Your plan's limit is reached"


class InsufficientCreditsError(OneAIError):
    """A workspace's credits cannot cover a reply's reservation; `details`: `balance`, `needed` (INR decimal
    strings)."""

    status, code, default_message = 402, "INSUFFICIENT_CREDITS", "The workspace's credits cannot cover this reply"


class ProviderKeyRefusedError(OneAIError):
    """The provider refused a workspace's own key for a reply (401/403: the key is marked invalid), or its
    account at the provider has no funds or quota left, or a `custom` key's base_url no longer passes the
    outbound guard (the key is not marked invalid for either); `details`: `provider_key_id`, `provider`,
    `name`, `reason` ("refused", "no_funds" or "url_refused"). A 4xx: the customer's key,
    not a platform failure (outside the 5xx and upstream-failure metrics)."""

    status, code, default_message = 424, "PROVIDER_KEY_REFUSED", "The workspace's provider key was refused"


class ForbiddenError(OneAIError):
    status, code, default_message = 403, "FORBIDDEN", "You are not allowed to do this"


class ChatbotDisabledError(ForbiddenError):
    """A member asked a chatbot whose status is `disabled`."""

    code, default_message = "CHATBOT_DISABLED", "This chatbot is disabled"


class WorkspaceSuspendedError(ForbiddenError):
    """The chatbot's workspace is suspended (`workspaces.suspended_at`)."""

    code, default_message = "WORKSPACE_SUSPENDED", "This workspace is suspended"


class NotFoundError(OneAIError):
    status, code, default_message = 404, "NOT_FOUND", "Not found"


class ConflictError(OneAIError):
    status, code, default_message = 409, "CONFLICT", "The request conflicts with the current state"


class PayloadTooLargeError(OneAIError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "The request body is too large"


class ValidationError(OneAIError):
    """422. `details.errors` lists `{field, message, type}` items (`field_error`); an item built without a
    `type` gets pydantic's generic `value_error`, so that every item a client reads has one."""

    status, code, default_message = 422, "VALIDATION_ERROR", "The request is not valid"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        items = (details or {}).get("errors")
        if isinstance(items, list):
            typed = [
                {**item, "type": item.get("type") or GENERIC_TYPE} if isinstance(item, dict) else item
                for item in items
            ]
            details = {**(details or {}), "errors": typed}
        super().__init__(message, details=details)


GENERIC_TYPE = "value_error"


def field_error(field: str, message: str, type: str) -> dict[str, str]:
    """One item of a 422's `details.errors`: the field (dotted path), what is wrong, and a stable type."""
    return {"field": field, "message": message, "type": type}


class QuotaExceededError(OneAIError):
    status, code, default_message = 429, "QUOTA_EXCEEDED", "Your quota for this kind of message is used up"


class RateLimitedError(OneAIError):
    status, code, default_message = 429, "RATE_LIMITED", "Too many requests"


class UpstreamError(OneAIError):
    status, code, default_message = 502, "UPSTREAM_ERROR", "The model provider failed"


class UnavailableError(OneAIError):
    status, code, default_message = 503, "UNAVAILABLE", "The service is temporarily unavailable"
