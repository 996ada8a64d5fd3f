"""CORS of the public routes, per chatbot: the answer echoes the request's Origin only once the chatbot's
`widget.allowed_origins` admitted it (`PublicCall.allowed_origin`, set by the service), never `*`, always
with `Vary: Origin`. Two more things happen on the way out: a 429 of the source's bucket, refused before
the chatbot could be read, echoes the Origin too (its body says nothing but "too many requests", and the
widget must read its Retry-After); a refusal of the visitor's own bucket carries that bucket's headers, and
one of the chatbot's daily widget messages the seconds to the next UTC day."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oneai.widget.service import PublicCall

CALL_SCOPE_KEY = "oneai.widget.call"
PUBLIC_PREFIX = "/public/"
EXPOSED = "retry-after, ratelimit, ratelimit-policy, x-vercel-ai-ui-message-stream"
# What this middleware decides alone (a route's preflight adds the allowed methods and headers).
OWN_HEADERS = (
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-expose-headers",
    b"vary",
)
RATE_HEADERS = (b"retry-after", b"ratelimit", b"ratelimit-policy")


class WidgetCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PUBLIC_PREFIX):
            await self.app(scope, receive, send)
            return
        request_origin = dict(scope.get("headers") or []).get(b"origin")

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                call: PublicCall | None = scope.get(CALL_SCOPE_KEY)
                headers = [
                    (name, value) for name, value in message.get("headers", []) if name.lower() not in OWN_HEADERS
                ]
                echo = call.allowed_origin if call is not None else None
                if echo is None and message["status"] == 429 and request_origin:
                    echo = request_origin.decode("latin-1")
                if echo:
                    headers.append((b"access-control-allow-origin", echo.encode("latin-1")))
                    headers.append((b"access-control-expose-headers", EXPOSED.encode()))
                headers.append((b"vary", b"Origin"))
                visitor = call.visitor_check if call is not None else None
                if visitor is not None and visitor.outcome is not None and not visitor.outcome.admitted:
                    headers = [(name, value) for name, value in headers if name.lower() not in RATE_HEADERS]
                    headers.extend((k.lower().encode(), v.encode()) for k, v in visitor.headers().items())
                if call is not None and call.retry_after is not None and message["status"] == 429:
                    # The chatbot's messages of the day are used up: retry on the next UTC day.
                    headers = [(name, value) for name, value in headers if name.lower() != b"retry-after"]
                    headers.append((b"retry-after", str(call.retry_after).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)
