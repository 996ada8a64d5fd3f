"""Per-request log context for the streaming app, which runs under uvicorn rather than a decorated
Lambda handler: the Lambda Web Adapter forwards the API Gateway request context in `x-amzn-request-context`
and the invocation's Lambda context in `x-amzn-lambda-context` (`make dev` sends both, like the adapter).
The keys are the request's own (task-local), so concurrent requests never log each other's ids."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneai.logging import logger, set_invocation_keys


class RequestLogContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        lambda_context = _json_header(headers, b"x-amzn-lambda-context")
        env_config = lambda_context.get("env_config") if isinstance(lambda_context.get("env_config"), dict) else {}
        # Each request runs in its own asyncio task, so these keys are this request's alone.
        set_invocation_keys(
            function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or _str(env_config.get("function_name")),
            function_request_id=_str(lambda_context.get("request_id")),
            correlation_id=_request_id(headers),
            function_arn=_str(lambda_context.get("invoked_function_arn")),
        )
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            # Method, route and status only: never bodies, tokens or message text.
            logger.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )


def _str(value: Any) -> str | None:
    return str(value) if value else None


def _json_header(headers: dict[bytes, bytes], name: bytes) -> dict[str, Any]:
    raw = headers.get(name)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # a client may send these headers too: deep JSON is no context
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _request_id(headers: dict[bytes, bytes]) -> str | None:
    context = _json_header(headers, b"x-amzn-request-context")
    if context.get("requestId"):
        return str(context["requestId"])
    request_id = headers.get(b"x-request-id")
    return request_id.decode() if request_id else None
