"""The workspaces app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from oneai.web import create_app
from workspaces.analytics import analytics
from workspaces.documents import documents, workspace_documents
from workspaces.routes import invitations, members, workspaces
from workspaces.webhook import webhook


def build_app() -> FastAPI:
    return create_app(
        title="OneAI workspaces",
        prefix="/workspaces",
        description=(
            "Workspaces of the chatbot platform: create, list, read with limits and usage, update, delete and"
            " restore; their members and roles; invitations by email and their acceptance; the knowledge base's documents and its search; the outbound webhook endpoint and its deliveries; the analytics of its chatbots."
        ),
        routers=[workspaces, members, invitations, workspace_documents, documents, webhook, analytics],
    )
