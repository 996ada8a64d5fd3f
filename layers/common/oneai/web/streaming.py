"""Streaming responses: one that notices at once when the client goes away, and the first reader's
response of a reply that is generated to its end whoever reads it.

Starlette's StreamingResponse, under ASGI servers of spec 2.4, learns of a disconnect only when its
next write fails, which can be long after the client left while the model keeps generating (and
billing). This one always listens for `http.disconnect` beside the stream and cancels the body
iterator the moment it arrives, then closes the iterator so its cleanup (saving a partial reply) runs.

The domain (`oneai.chat`) yields the bytes of its streams and knows nothing of these; the routes wrap them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class EventStreamResponse(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as task_group:

            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the client is gone; the body's cleanup still runs below
                finally:
                    task_group.cancel_scope.cancel()

            task_group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            task_group.cancel_scope.cancel()
        close = getattr(self.body_iterator, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()


class Generation(Protocol):
    """A reply being generated on its own (`oneai.chat.resumable.LiveReply`): its first reader's stream,
    and the end of its generation."""

    def events(self) -> AsyncIterator[bytes]: ...

    async def wait(self) -> None: ...


class ReplyStreamResponse(EventStreamResponse):
    """The first reader's response. It ends only when the generation has ended, even when the client left
    earlier: the invocation (and so the Lambda environment) stays busy while the reply is generated."""

    def __init__(self, reply: Generation, headers: dict[str, str]) -> None:
        super().__init__(reply.events(), headers=headers)
        self._reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._reply.wait()
