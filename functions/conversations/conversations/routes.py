"""Routes of the conversations function: each opens the caller's transaction and calls a service."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response, status

from oneai.attachments.storage import delete_after_commit
from oneai.conversations import service
from oneai.conversations.export import export_conversation
from oneai.conversations.models import (
    MAX_SEARCH_CHARS,
    Conversation,
    ConversationCreate,
    ConversationListItem,
    ConversationUpdate,
    ConversationWithMessages,
    ExportFormat,
    HistoryHit,
    HistoryQuery,
    Message,
    SharedSnapshot,
    ShareLink,
)
from oneai.pagination import DEFAULT_LIMIT, Page, PageRequest
from oneai.web import CurrentPrincipal, Db
from oneai.web.ids import PathId
from oneai.web.paging import Cursor, Limit

conversations = APIRouter(prefix="/conversations", tags=["conversations"])
public = APIRouter(tags=["shared"])
history = APIRouter(prefix="/chat", tags=["chat"])


@conversations.get("", summary="List conversations, newest activity first; `q` searches titles and messages")
def list_conversations(
    principal: CurrentPrincipal,
    db: Db,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_SEARCH_CHARS,
            description="in the title (contains) or the current messages' text (full text); `match` says where",
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ConversationListItem]:
    with db.user_transaction(principal) as conn:
        return service.list_conversations(
            conn, principal.user_id, query=q, page=PageRequest(limit=limit, cursor=cursor)
        )


@conversations.post("", status_code=status.HTTP_201_CREATED, summary="Create a conversation")
def create_conversation(principal: CurrentPrincipal, db: Db, body: ConversationCreate) -> Conversation:
    with db.user_transaction(principal) as conn:
        return service.create_conversation(conn, principal.user_id, body)


@conversations.get("/{conversation_id}", summary="A conversation with its current branch of messages")
def get_conversation(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> ConversationWithMessages:
    with db.user_transaction(principal) as conn:
        return service.get_conversation(conn, conversation_id)


@conversations.patch("/{conversation_id}", summary="Rename or change metadata")
def update_conversation(
    principal: CurrentPrincipal, db: Db, conversation_id: PathId, body: ConversationUpdate
) -> Conversation:
    with db.user_transaction(principal) as conn:
        return service.update_conversation(conn, conversation_id, body)


@conversations.delete(
    "/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete with everything on it"
)
def delete_conversation(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        keys = service.delete_conversation(conn, conversation_id)
    delete_after_commit(keys, kind="attachments")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@conversations.get("/{conversation_id}/messages", summary="The current branch in sequence order")
def list_messages(
    principal: CurrentPrincipal,
    db: Db,
    conversation_id: PathId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Message]:
    with db.user_transaction(principal) as conn:
        return service.list_messages(conn, conversation_id, PageRequest(limit=limit, cursor=cursor))


@conversations.get(
    "/{conversation_id}/messages/{message_id}/revisions", summary="Every revision of that message position"
)
def list_revisions(
    principal: CurrentPrincipal,
    db: Db,
    conversation_id: PathId,
    message_id: PathId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Message]:
    with db.user_transaction(principal) as conn:
        return service.list_revisions(conn, conversation_id, message_id, PageRequest(limit=limit, cursor=cursor))


@conversations.post(
    "/{conversation_id}/messages/{message_id}/activate", summary="Make that revision's branch current"
)
def activate_revision(
    principal: CurrentPrincipal, db: Db, conversation_id: PathId, message_id: PathId
) -> ConversationWithMessages:
    with db.user_transaction(principal) as conn:
        return service.activate_revision(conn, conversation_id, message_id)


@conversations.post("/{conversation_id}/share", summary="Create (or return) a read-only public link")
def share_conversation(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> ShareLink:
    with db.user_transaction(principal) as conn:
        return service.share_conversation(conn, principal.user_id, conversation_id, db.settings.share_url_base)


@conversations.delete(
    "/{conversation_id}/share", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke the public link"
)
def revoke_share(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.revoke_share(conn, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@conversations.get(
    "/{conversation_id}/export",
    summary="Download the current branch",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/markdown": {}, "text/plain": {}}}},
)
def export(
    principal: CurrentPrincipal, db: Db, conversation_id: PathId, format: ExportFormat = "json"
) -> Response:
    with db.user_transaction(principal) as conn:
        conversation = service.get_conversation(conn, conversation_id)
    document = export_conversation(conversation, format)
    disposition = f"attachment; filename=\"{document.filename}\"; filename*=UTF-8''{quote(document.filename)}"
    return Response(document.body, media_type=document.media_type, headers={"content-disposition": disposition})


@public.get("/shared/{token}", summary="A shared conversation's snapshot (no auth)")
def shared(db: Db, token: str) -> SharedSnapshot:
    with db.anon_transaction() as conn:
        return service.shared_snapshot(conn, token, db.settings.share_url_base)


@history.get("/history", summary="Search messages across your conversations")
def search_history(
    principal: CurrentPrincipal, db: Db, query: Annotated[HistoryQuery, Query()]
) -> Page[HistoryHit]:
    with db.user_transaction(principal) as conn:
        return service.search_history(
            conn,
            query=query.q,
            model=query.model,
            created_from=query.from_,
            created_to=query.to,
            page=PageRequest(limit=query.limit, cursor=query.cursor),
        )
