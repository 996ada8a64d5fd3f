"""The one error envelope, and the one place where every error becomes it.

`{"error": {"code": "...", "message": "...", "details": {}}}` — a 5xx never carries a trace or a secret.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from oneai.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    OneAIError,
    PayloadTooLargeError,
    QuotaExceededError,
    UnauthorizedError,
    ValidationError,
)
from oneai.logging import logger
from oneai.observability import count_server_error, emit_metric

_STATUS_ERRORS: dict[int, type[OneAIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,  # e.g. a dependency's HTTPException(403): FORBIDDEN, not INTERNAL_ERROR
    404: NotFoundError,
    405: NotFoundError,  # like API Gateway: an unknown method on a path is simply not there
    413: PayloadTooLargeError,
}


class ErrorBody(BaseModel):
    code: str = Field(examples=["NOT_FOUND"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    error: ErrorBody


# The `Retry-After` header of a 429 QUOTA_EXCEEDED, as the OpenAPI documents declare it.
RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "whole seconds until the quota resets (resets_at), at least 1",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def retry_after_seconds(resets_at: object, now: datetime | None = None) -> int | None:
    """Whole seconds until `resets_at` (an ISO 8601 time), at least 1; None when there is no reset."""
    if not isinstance(resets_at, str):
        return None
    try:
        moment = datetime.fromisoformat(resets_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    remaining = (moment - (now or datetime.now(UTC))).total_seconds()
    return max(1, int(-(-remaining // 1)))  # rounded up: retrying earlier is refused again


def error_headers(error: OneAIError, headers: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The headers of an error answer: a quota refusal's `Retry-After` added to the given ones."""
    if isinstance(error, QuotaExceededError):
        seconds = retry_after_seconds(error.details.get("resets_at"))
        if seconds is not None:
            return {**(headers or {}), "retry-after": str(seconds)}
    return dict(headers) if headers is not None else None


def error_response(error: OneAIError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    count_server_error(error.status)  # every error answer passes here, the streaming app's too
    body = ErrorEnvelope(error=ErrorBody(code=error.code, message=error.message, details=error.details))
    return JSONResponse(body.model_dump(), status_code=error.status, headers=error_headers(error, headers))


# How a middleware answers an error, given the request's scope: the API a path belongs to picks the shape.
ErrorAnswer = Callable[[Scope, OneAIError], Response]


def envelope_answer(_: Scope, error: OneAIError) -> Response:
    return error_response(error)


def _field_path(location: tuple[Any, ...]) -> str:
    # ("body", "title") -> "title"; ("query", "limit") -> "limit"
    parts = [str(p) for p in location[1:]] if len(location) > 1 else [str(p) for p in location]
    return ".".join(parts)


def validation_error_from(exc: RequestValidationError) -> OneAIError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequestError("The request body is not valid JSON")
    if any(e.get("loc", ("",))[0] == "path" for e in errors):
        # A malformed id names nothing that exists, whatever else the request holds.
        return NotFoundError()
    fields = [
        {"field": _field_path(tuple(e.get("loc", ()))), "message": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]
    return ValidationError("The request is not valid", details={"errors": fields})


def error_of_http_exception(exc: StarletteHTTPException) -> OneAIError:
    """The domain error of an HTTPException raised by FastAPI or Starlette (a body they cannot read is 400)."""
    return _STATUS_ERRORS.get(exc.status_code, OneAIError)()


def note_domain_error(exc: OneAIError) -> None:
    """The log line and metric of a domain error about to be answered (a 4xx is the caller's, unlogged)."""
    if exc.status >= 500:
        logger.warning("request failed", extra={"error_code": exc.code, "status": exc.status})
    if exc.code.startswith("UPSTREAM"):
        emit_metric("UpstreamFailures", 1, code=exc.code)


def note_unhandled(exc: BaseException) -> None:
    """The log line of an unexpected exception: its type and where it was raised, never the message (a
    database error quotes the user's input)."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    logger.error("unhandled error", extra={"error_type": type(exc).__name__, "where": where})


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OneAIError)
        note_domain_error(exc)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error_from(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(error_of_http_exception(exc), headers=exc.headers)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        note_unhandled(exc)
        return error_response(OneAIError())

    app.add_exception_handler(OneAIError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
