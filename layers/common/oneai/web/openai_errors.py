"""Errors of the OpenAI-compatible API (`/v1`) in OpenAI's body, so that the official SDKs raise their own
typed errors: `{"error": {"message", "type", "param", "code"}}`.

    401 invalid_api_key          -> openai.AuthenticationError
    403 model_not_in_plan / account_suspended -> openai.PermissionDeniedError
    404 model_not_found          -> openai.NotFoundError
    429 rate_limit_exceeded      -> openai.RateLimitError (Retry-After says when to try again)
    429 insufficient_quota       -> openai.RateLimitError
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oneai.errors import (
    ForbiddenError,
    NotFoundError,
    OneAIError,
    QuotaExceededError,
    RateLimitedError,
    UnauthorizedError,
)
from oneai.logging import logger
from oneai.web.errors import validation_error_from


def openai_error_body(error: OneAIError) -> tuple[int, dict[str, Any]]:
    """(status, body) of a domain error in OpenAI's shape."""
    kind, code, param, status = "invalid_request_error", error.code.lower(), None, error.status
    if isinstance(error, UnauthorizedError):
        code = "invalid_api_key"
    elif isinstance(error, ForbiddenError):
        kind = "permission_error"
        code = "model_not_in_plan" if "model" in error.details else "account_suspended"
        param = "model" if "model" in error.details else None
    elif isinstance(error, NotFoundError) and "model" in error.details:
        code, param = "model_not_found", "model"
    elif isinstance(error, RateLimitedError):
        kind, code = "requests", "rate_limit_exceeded"
    elif isinstance(error, QuotaExceededError):
        kind, code = "insufficient_quota", "insufficient_quota"
    elif status == 422:
        status = 400  # OpenAI answers invalid parameters with 400
        fields = error.details.get("errors") or []
        param = fields[0].get("field") if fields and isinstance(fields[0], dict) else None
    elif status >= 500:
        kind = "server_error"
    return status, {"error": {"message": error.message, "type": kind, "param": param, "code": code}}


def openai_error_response(error: OneAIError) -> JSONResponse:
    status, body = openai_error_body(error)
    return JSONResponse(body, status_code=status)


def install_openai_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OneAIError)
        if exc.status >= 500:
            logger.warning("request failed", extra={"error_code": exc.code, "status": exc.status})
        return openai_error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return openai_error_response(validation_error_from(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: OneAIError = NotFoundError() if exc.status_code in (404, 405) else OneAIError()
        if exc.status_code == 401:
            error = UnauthorizedError()
        return openai_error_response(error)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return openai_error_response(OneAIError())

    app.add_exception_handler(OneAIError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
