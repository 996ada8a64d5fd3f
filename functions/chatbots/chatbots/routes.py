"""Routes of a workspace's chatbots (API.md "Chatbots"): each opens the caller's transaction and calls
`oneai.chatbots.service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from oneai.chatbots import service
from oneai.chatbots.models import (
    Chatbot,
    ChatbotCreate,
    ChatbotDailyStats,
    ChatbotDetail,
    ChatbotPage,
    ChatbotStatus,
    ChatbotTemplates,
    ChatbotUpdate,
    EmbedCode,
    StatsQuery,
    UseCase,
)
from oneai.pagination import DEFAULT_LIMIT, PageRequest
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId
from oneai.web.paging import Cursor, Limit

Responses = dict[int | str, dict[str, Any]]


def refused(status_code: int, description: str) -> Responses:
    return {status_code: {"model": ErrorEnvelope, "description": description}}


PLAN_LIMIT = refused(402, "PLAN_LIMIT: details limit, used, tier (the workspace owner's tier)")
EDITORS = refused(403, "FORBIDDEN: a viewer's write (editors and above manage chatbots)")

workspace_chatbots = APIRouter(prefix="/workspaces/{workspace_id}", tags=["chatbots"])
chatbots = APIRouter(prefix="/chatbots", tags=["chatbots"])
templates = APIRouter(tags=["chatbots"])


@workspace_chatbots.post(
    "/chatbots",
    status_code=status.HTTP_201_CREATED,
    summary="Create a chatbot (editors): the full configuration, with its public id",
    responses={**PLAN_LIMIT, **EDITORS},
)
def create_chatbot(principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: ChatbotCreate) -> Chatbot:
    with db.user_transaction(principal) as conn:
        return service.create_chatbot(conn, db.settings, workspace_id, body)


@workspace_chatbots.get("/chatbots", summary="The workspace's chatbots, newest first, with their stats")
def list_chatbots(
    principal: CurrentPrincipal,
    db: Db,
    workspace_id: PathId,
    q: Annotated[str | None, Query(max_length=200, description="in the name or description")] = None,
    use_case: UseCase | None = None,
    status: ChatbotStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ChatbotPage:
    with db.user_transaction(principal) as conn:
        return service.list_chatbots(
            conn, workspace_id, PageRequest(limit=limit, cursor=cursor), q=q, use_case=use_case, status=status
        )


@chatbots.get("/{chatbot_id}", summary="A chatbot with its stats, documents and your recent conversations")
def get_chatbot(principal: CurrentPrincipal, db: Db, chatbot_id: PathId) -> ChatbotDetail:
    with db.user_transaction(principal) as conn:
        return service.get_chatbot(conn, chatbot_id)


@chatbots.patch(
    "/{chatbot_id}",
    summary="Change any subset of the configuration (editors), validated as a whole",
    responses=EDITORS,
)
def update_chatbot(principal: CurrentPrincipal, db: Db, chatbot_id: PathId, body: ChatbotUpdate) -> ChatbotDetail:
    with db.user_transaction(principal) as conn:
        return service.update_chatbot(conn, chatbot_id, body)


@chatbots.delete(
    "/{chatbot_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete (editors): gone at once; purged with its conversations and documents unless kept",
    responses=EDITORS,
)
def delete_chatbot(
    principal: CurrentPrincipal,
    db: Db,
    chatbot_id: PathId,
    keep_conversations: Annotated[bool, Query(description="keep its conversations (default)")] = True,
    keep_documents: Annotated[bool, Query(description="keep its documents (default)")] = True,
) -> Response:
    with db.user_transaction(principal) as conn:
        service.delete_chatbot(
            conn, chatbot_id, keep_conversations=keep_conversations, keep_documents=keep_documents
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@chatbots.post(
    "/{chatbot_id}/duplicate",
    status_code=status.HTTP_201_CREATED,
    summary="A draft copy with the same settings and documents (editors; counts toward the plan)",
    responses={**PLAN_LIMIT, **EDITORS},
)
def duplicate_chatbot(principal: CurrentPrincipal, db: Db, chatbot_id: PathId) -> Chatbot:
    with db.user_transaction(principal) as conn:
        return service.duplicate_chatbot(conn, db.settings, chatbot_id)


@chatbots.post(
    "/{chatbot_id}/toggle",
    summary="active -> disabled, disabled -> active, draft -> active (editors)",
    responses=EDITORS,
)
def toggle_chatbot(principal: CurrentPrincipal, db: Db, chatbot_id: PathId) -> ChatbotDetail:
    with db.user_transaction(principal) as conn:
        return service.toggle_chatbot(conn, chatbot_id)


@chatbots.post("/{chatbot_id}/reset-stats", summary="The stats count from now (editors)", responses=EDITORS)
def reset_stats(principal: CurrentPrincipal, db: Db, chatbot_id: PathId) -> ChatbotDetail:
    with db.user_transaction(principal) as conn:
        return service.reset_stats(conn, chatbot_id)


@chatbots.get("/{chatbot_id}/embed-code", summary="The widget's <script> tag for this chatbot")
def embed_code(principal: CurrentPrincipal, db: Db, chatbot_id: PathId) -> EmbedCode:
    with db.user_transaction(principal) as conn:
        return service.embed_code(conn, db.settings, chatbot_id)


@chatbots.get("/{chatbot_id}/stats", summary="Conversations and messages per UTC day, and their totals")
def chatbot_stats(
    principal: CurrentPrincipal, db: Db, chatbot_id: PathId, query: Annotated[StatsQuery, Query()]
) -> ChatbotDailyStats:
    with db.user_transaction(principal) as conn:
        return service.daily_stats(conn, chatbot_id, query)


@templates.get("/chatbot-templates", summary="System-prompt templates by use case (any signed-in user)")
def list_templates(principal: CurrentPrincipal, use_case: UseCase | None = None) -> ChatbotTemplates:
    del principal  # signed in is enough
    return service.templates(use_case)
