"""A streaming response that notices at once when the client goes away.

Starlette's StreamingResponse, under ASGI servers of spec 2.4, learns of a disconnect only when its
next write fails, which can be long after the client left while the model keeps generating (and
billing). This one always listens for `http.disconnect` beside the stream and cancels the body
iterator the moment it arrives, then closes the iterator so its cleanup (saving a partial reply) runs.
"""

from __future__ import annotations

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
