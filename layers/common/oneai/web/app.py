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
from oneai.web.deps import RATE_CHECK_SCOPE_KEY
from oneai.web.errors import ErrorAnswer, ErrorEnvelope, envelope_answer, install_error_handlers
from oneai.web.inputs import InputGuard

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Malformed JSON",
        401: "Missing or invalid access token",
        403: "Not allowed (e.g. suspended account)",
        404: "Not found, or not yours",
        413: "Body over the documented limit",
        422: "Invalid fields; details.errors lists them",
        429: "RATE_LIMITED (Retry-After, RateLimit-Policy and RateLimit headers)",
        500: "INTERNAL_ERROR: something failed on our side (no trace, no secret)",
        503: "Database unavailable; nothing was written",
    }.items()
}


class BodySizeLimit:
    """413 for bodies over `max_bytes`, by Content-Length or by counting the stream, in the shape `answer`
    writes for the request's API."""

    def __init__(self, app: ASGIApp, max_bytes: int, answer: ErrorAnswer = envelope_answer) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        too_large = False  # the body passed the limit while the app read it
        started = False  # a response has begun (through this middleware)
        replaced = False  # the app's own answer is being swapped for the 413

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                too_large = True
                raise PayloadTooLargeError()
            return message

        async def checked_send(message: Message) -> None:
            # FastAPI turns a failed body read into its own 400 ("error parsing the body"): a body over
            # the limit is answered 413 whatever the app makes of it (unless it had already answered).
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                if too_large and not started:
                    started = replaced = True
                    await self._too_large(scope, receive, send)
                    return
                started = True
            if not replaced:
                await send(message)

        try:
            await self.app(scope, counting_receive, checked_send)
        except PayloadTooLargeError:
            # A reader that does not turn the failed read into an answer (InputGuard buffers the body
            # before FastAPI sees it) lets the error through: still a 413, unless an answer had begun.
            if not too_large or started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.answer(scope, PayloadTooLargeError(f"The body must be at most {self.max_bytes} bytes"))
        await response(scope, receive, send)


class RateLimitHeaders:
    """`RateLimit-Policy` and `RateLimit` on every response of a rate-checked request, and `Retry-After`
    on a refusal (draft-ietf-httpapi-ratelimit-headers-11), from the request's `RateCheck`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            check = scope.get(RATE_CHECK_SCOPE_KEY)
            if message["type"] == "http.response.start" and check is not None:
                added = {k.lower().encode(): v.encode() for k, v in check.headers().items()}
                headers = [
                    (name, value) for name, value in message.get("headers", []) if name.lower() not in added
                ]
                headers.extend(added.items())
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    *,
    title: str,
    prefix: str,
    routers: Sequence[APIRouter],
    description: str = "",
    error_answer: ErrorAnswer = envelope_answer,
    cors: bool = True,
) -> FastAPI:
    """`error_answer` shapes the refusals of the middlewares (before any route runs): the envelope, unless
    the app also serves another API (the chat app's OpenAI-compatible `/v1`). `cors=False` leaves CORS to
    the app (the widget's public routes answer each chatbot's own allowed origins)."""
    settings = environment_settings()  # no secret is read at import
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        openapi_url=f"{prefix}/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
        # No `/path/` -> `/path` redirect: Starlette builds its Location from the request's Host header,
        # and API Gateway does not redirect either. A trailing slash is simply another path: 404.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.add_middleware(InputGuard, answer=error_answer)  # inside the size limit: it reads small bodies
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, answer=error_answer)
    app.add_middleware(RateLimitHeaders)
    if not cors:
        return app
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["authorization", "content-type"],
        expose_headers=["content-disposition", "retry-after", "ratelimit", "ratelimit-policy"],
        max_age=600,
    )
    return app
