"""The widget app, built by the shared factory without its CORS (each chatbot's allowed origins decide,
`widget.cors`); uvicorn serves `app` (run.sh, or `make dev` directly)."""

from __future__ import annotations

from fastapi import FastAPI

from oneai.runtime import freeze_startup_objects
from oneai.web import create_app
from oneai.web.snapstart import snapstart_hooks
from widget.cors import WidgetCors
from widget.routes import router


def build_app() -> FastAPI:
    app = create_app(
        title="OneAI widget",
        prefix="/public",
        description="The embeddable widget's script and the public routes its visitors use (no account).",
        routers=[router, snapstart_hooks],  # the adapter's SnapStart hook (template: AWS_LWA_SNAPSTART_*)
        cors=False,
    )
    app.add_middleware(WidgetCors)
    return app


app = build_app()
freeze_startup_objects()
