"""The conversations app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from conversations.attachment_routes import attachments, shared_attachments
from conversations.routes import conversations, history, public
from oneai.web import create_app


def build_app() -> FastAPI:
    return create_app(
        title="OneAI conversations",
        prefix="/conversations",
        description="Conversations, their revisions, sharing, export and history search; attachments.",
        routers=[conversations, public, history, attachments, shared_attachments],
    )
