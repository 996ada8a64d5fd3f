"""The chatbots app, built by the shared factory. Its routers are listed in `ROUTERS`: a new router module
of this package is one line there."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from chatbots.inbox_routes import chatbot_inbox, inbox
from chatbots.retrieve import retrieve
from chatbots.routes import chatbots, templates, workspace_chatbots
from oneai.web import create_app

ROUTERS: list[APIRouter] = [workspace_chatbots, chatbots, retrieve, templates, chatbot_inbox, inbox]


def build_app() -> FastAPI:
    return create_app(
        title="OneAI chatbots",
        prefix="/chatbots",
        description=(
            "A workspace's chatbots: create, list with stats, read, change, delete, duplicate, toggle, reset"
            " the stats, the widget's embed code, daily stats, the chunks it would retrieve; the system-prompt"
            " templates; and the inbox of each chatbot's visitor conversations (list, search, triage, delete,"
            " export, stats)."
        ),
        routers=ROUTERS,
    )
