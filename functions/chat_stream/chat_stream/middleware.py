"""Per-request log context for the streaming app, which runs under uvicorn rather than a decorated
Lambda handler: the Lambda Web Adapter forwards the invocation's context in `x-amzn-request-context`."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneai.logging import logger


class RequestLogContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        logger.set_correlation_id(_request_id(headers))
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
            logger.set_correlation_id(None)


def _request_id(headers: dict[bytes, bytes]) -> str | None:
    raw = headers.get(b"x-amzn-request-context")
    if raw:
        try:
            context = json.loads(raw)
        except ValueError:
            context = None
        if isinstance(context, dict) and context.get("requestId"):
            return str(context["requestId"])
    request_id = headers.get(b"x-request-id")
    return request_id.decode() if request_id else None
