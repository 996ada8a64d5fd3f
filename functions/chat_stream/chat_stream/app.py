"""The chat app, built by the shared factory; uvicorn serves `app` (run.sh, or `make dev` directly)."""

from __future__ import annotations

from fastapi import FastAPI

from chat_stream.middleware import RequestLogContext
from chat_stream.openai_routes import OPENAI_PREFIX, build_v1_app
from chat_stream.routes import router
from oneai.runtime import freeze_startup_objects
from oneai.web import create_app
from oneai.web.openai_errors import openai_answer_under
from oneai.web.snapstart import snapstart_hooks


def build_app() -> FastAPI:
    app = create_app(
        title="OneAI chat",
        prefix="/chat",
        description="The streamed chat reply through OpenRouter, and the model list.",
        routers=[router, snapstart_hooks],  # the adapter's SnapStart hook (template: AWS_LWA_SNAPSTART_*)
        error_answer=openai_answer_under(OPENAI_PREFIX),
    )
    # The OpenAI-compatible API (API keys, OpenAI's error bodies); here because its replies stream.
    app.mount(OPENAI_PREFIX, build_v1_app())
    app.add_middleware(RequestLogContext)
    return app


app = build_app()
freeze_startup_objects()
