"""The app factory of every buffered function (conversations, billing, account, admin).

Each app gets the same error envelope, body size limit, CORS and an OpenAPI document with a bearer
security scheme, served under the app's own prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneai.config import environment_settings
from oneai.errors import PayloadTooLargeError
from oneai.web.errors import ErrorEnvelope, error_response, install_error_handlers

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Malformed JSON",
        401: "Missing or invalid access token",
        403: "Not allowed (e.g. suspended account)",
        404: "Not found, or not yours",
        413: "Body over the documented limit",
        422: "Invalid fields; details.errors lists them",
        503: "Database unavailable; nothing was written",
    }.items()
}


class BodySizeLimit:
    """413 in the envelope for bodies over `max_bytes`, by Content-Length or by counting the stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise PayloadTooLargeError()
            return message

        await self.app(scope, counting_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(PayloadTooLargeError(f"The body must be at most {self.max_bytes} bytes"))
        await response(scope, receive, send)


def create_app(
    *,
    title: str,
    prefix: str,
    routers: Sequence[APIRouter],
    description: str = "",
) -> FastAPI:
    settings = environment_settings()  # no secret is read at import
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        openapi_url=f"{prefix}/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["authorization", "content-type"],
        expose_headers=["content-disposition", "retry-after"],
        max_age=600,
    )
    return app
