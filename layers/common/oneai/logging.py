"""Module-level Powertools logger shared by the layer: JSON lines, never bodies, tokens or secrets.

Each invocation's keys (function name, request ids, cold start) are kept per thread and per asyncio task
(Powertools' thread-safe keys, a ContextVar), not in the logger's global state: under `make dev` every
function shares one process, and the streaming app serves many requests at once, so global keys would
name whichever function ran last, with its stale request id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.jmespath_utils import query

logger = Logger(service="oneai")

INVOCATION_KEYS = (
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "cold_start",
    "correlation_id",
)
_warm: set[str] = set()
Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])


def set_invocation_keys(
    *,
    function_name: str | None,
    function_request_id: str | None,
    correlation_id: str | None = None,
    function_arn: str | None = None,
    function_memory_size: int | None = None,
) -> None:
    """From here on, every log line of this thread (or asyncio task) names this function and this
    request; whatever the previous invocation on it set is gone."""
    cold_start = function_name is not None and function_name not in _warm
    if function_name is not None:
        _warm.add(function_name)
    keys = {
        "function_name": function_name,
        "function_memory_size": function_memory_size,
        "function_arn": function_arn,
        "function_request_id": function_request_id,
        "cold_start": cold_start,
        "correlation_id": correlation_id,
    }
    logger.thread_safe_remove_keys(INVOCATION_KEYS)
    logger.thread_safe_append_keys(**{name: value for name, value in keys.items() if value is not None})


def log_invocation(correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    """Decorate a Lambda handler: its invocation's keys (from the Lambda context) on every log line,
    and the correlation id found at `correlation_id_path` (JMESPath) in the event."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapped(event: Any, context: Any) -> Any:
            correlation_id = None
            if correlation_id_path and isinstance(event, dict):
                found = query(envelope=correlation_id_path, data=event)
                correlation_id = str(found) if found is not None else None
            set_invocation_keys(
                function_name=getattr(context, "function_name", None),
                function_request_id=getattr(context, "aws_request_id", None),
                correlation_id=correlation_id,
                function_arn=getattr(context, "invoked_function_arn", None),
                function_memory_size=_int_or_none(getattr(context, "memory_limit_in_mb", None)),
            )
            return handler(event, context)

        return cast(Handler, wrapped)

    return decorate


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
