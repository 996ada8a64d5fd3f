"""The docs app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from docs.routes import feedback, guide
from oneai.web import create_app


def build_app() -> FastAPI:
    return create_app(
        title="OneAI docs",
        prefix="/docs",
        description="The user guide: search it, read its pages, tell us whether a page helped.",
        routers=[guide, feedback],
    )
