"""The OpenAI-compatible API under `/v1` (API keys only), in OpenAI's wire format and error bodies.

It lives in the chat_stream function because `stream: true` replies stream, which needs the Lambda Web
Adapter's response streaming; the buffered functions (Mangum) cannot stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

from oneai.chat.completions import CompletionRequest, model_listing
from oneai.chat.entry import start_completion
from oneai.db.users import caller_tier
from oneai.web.deps import ApiKeyChatPrincipal, ApiKeyPrincipal, Db
from oneai.web.openai_errors import install_openai_error_handlers
from oneai.web.openrouter import OpenRouter
from oneai.web.streaming import EventStreamResponse

router = APIRouter(tags=["OpenAI-compatible"])
OPENAI_PREFIX = "/v1"  # where the chat app mounts this API
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.get("/models", summary="The models your plan may use, in OpenAI's list shape")
def list_models(principal: ApiKeyPrincipal, db: Db) -> dict[str, Any]:
    with db.user_transaction(principal) as conn:
        return model_listing(caller_tier(conn))


@router.post("/chat/completions", summary="A chat completion, streamed (stream: true) or whole")
async def chat_completions(
    principal: ApiKeyChatPrincipal, db: Db, client: OpenRouter, body: CompletionRequest
) -> Response:
    relay = await start_completion(db, client, principal, body)
    if body.stream:
        return EventStreamResponse(relay.events(), media_type="text/event-stream", headers=STREAM_HEADERS)
    return JSONResponse(await relay.complete())


def build_v1_app() -> FastAPI:
    """Mounted at `/v1` by the chat app (which adds CORS, the body limit and the rate-limit headers)."""
    app = FastAPI(title="OneAI OpenAI-compatible API", openapi_url=None, docs_url=None, redoc_url=None)
    install_openai_error_handlers(app)
    app.include_router(router)
    return app
