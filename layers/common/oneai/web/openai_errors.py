"""Errors of the OpenAI-compatible API (`/v1`) in OpenAI's body, so that the official SDKs raise their own
typed errors: `{"error": {"message", "type", "param", "code"}}`.

    400 invalid_value / invalid_type / missing_required_parameter / empty_array (param names the field)
                                 -> openai.BadRequestError
    400 code null                -> openai.BadRequestError (a body that cannot be read as JSON)
    401 invalid_api_key          -> openai.AuthenticationError
    403 model_not_in_plan / account_suspended -> openai.PermissionDeniedError
    404 model_not_found          -> openai.NotFoundError
    429 rate_limit_exceeded      -> openai.RateLimitError (Retry-After says when to try again)
    429 insufficient_quota       -> openai.RateLimitError (Retry-After: until the quota resets)

Every error of a `/v1` request takes this shape, the refusals of the chat app's middlewares included (the
body limit and the input guard run before the mounted app: `openai_answer_under`), and a 5xx is logged
and counted (`ServerErrors`) as in the web apps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from oneai.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    OneAIError,
    QuotaExceededError,
    RateLimitedError,
    UnauthorizedError,
    ValidationError,
)
from oneai.observability import count_server_error
from oneai.web.errors import (
    ErrorAnswer,
    error_headers,
    error_of_http_exception,
    error_response,
    note_domain_error,
    note_unhandled,
)

# The codes OpenAI gives a parameter it refuses, which the items of a ValidationError may already carry.
OPENAI_PARAMETER_CODES = frozenset({"invalid_value", "invalid_type", "missing_required_parameter", "empty_array"})
_INDEX_SEGMENT = re.compile(r"\.(\d+)(?=\.|$)")


def openai_param(field: str) -> str | None:
    """A field path as OpenAI writes it: `messages.0.content` -> `messages[0].content`; None for the body."""
    return _INDEX_SEGMENT.sub(r"[\1]", field) or None


def _parameter_code(kind: str) -> str | None:
    if kind in OPENAI_PARAMETER_CODES:
        return kind
    if kind == "missing":
        return "missing_required_parameter"
    if kind == "json_invalid":  # NaN or Infinity: not JSON, which OpenAI answers without a code
        return None
    # pydantic's `string_type`, `dict_type`..., and `bool_parsing`, `int_parsing`... (a string it could not read)
    return "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"


def _parameter_message(code: str | None, param: str | None, message: str) -> str:
    if param is None or code is None:
        return message
    if code == "missing_required_parameter":
        return f"Missing required parameter: '{param}'."
    if code == "empty_array":
        return f"Invalid '{param}': empty array. Expected an array with at least one item."
    if code == "invalid_type":
        return f"Invalid type for '{param}': {message}"
    return f"Invalid value for '{param}': {message}"


def openai_error_body(error: OneAIError) -> tuple[int, dict[str, Any]]:
    """(status, body) of a domain error in OpenAI's shape."""
    kind, param, status, message = "invalid_request_error", None, error.status, error.message
    code: str | None = error.code.lower()
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
    elif isinstance(error, BadRequestError):
        code = None  # a body that cannot be read: OpenAI names no code
    elif status == 422:
        status = 400  # OpenAI answers invalid parameters with 400, naming the first
        fields = error.details.get("errors") or []
        first = fields[0] if fields and isinstance(fields[0], dict) else {}
        param = openai_param(str(first.get("field") or ""))
        code = _parameter_code(str(first.get("type") or ""))
        message = _parameter_message(code, param, str(first.get("message") or error.message))
    elif status >= 500:
        kind = "server_error"
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_error_response(error: OneAIError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    count_server_error(error.status)  # as the envelope's answer does: the app-5xx alarm counts these too
    status, body = openai_error_body(error)
    return JSONResponse(body, status_code=status, headers=error_headers(error, headers))


def openai_answer_under(prefix: str) -> ErrorAnswer:
    """The middlewares' answer of an app that mounts the OpenAI-compatible API at `prefix`: OpenAI's shape
    for a request under it, the envelope for every other."""

    def answer(scope: Scope, error: OneAIError) -> Response:
        path = str(scope.get("path", ""))
        if path == prefix or path.startswith(prefix + "/"):
            return openai_error_response(error)
        return error_response(error)

    return answer


def openai_validation_error(exc: RequestValidationError) -> OneAIError:
    """FastAPI's validation failure as a domain error whose items carry OpenAI's parameter codes."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequestError("The request body is not valid JSON")
    items = []
    for e in errors:
        location = [part for part in tuple(e.get("loc", ()))[1:]]  # without "body" (or "query")
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
        kind = str(e.get("type", ""))
        if kind == "too_short" and e.get("input") == []:
            kind = "empty_array"
        items.append({"field": field, "message": str(e.get("msg", "")), "type": _parameter_code(kind)})
    return ValidationError("The request is not valid", details={"errors": items})


def install_openai_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OneAIError)
        note_domain_error(exc)
        return openai_error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return openai_error_response(openai_validation_error(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        # A body FastAPI cannot read is its 400, a missing route 404: the same table as the web apps'.
        assert isinstance(exc, StarletteHTTPException)
        error = error_of_http_exception(exc)
        note_domain_error(error)
        return openai_error_response(error, headers=exc.headers)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        note_unhandled(exc)
        return openai_error_response(OneAIError())

    app.add_exception_handler(OneAIError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
