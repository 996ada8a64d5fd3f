"""Routes of the inbox (API.md "Chatbot conversations (the inbox)"): each opens the caller's transaction
and calls `oneai.inbox.service`. Editors and above; a viewer is 403, anyone else 404."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from oneai.attachments.storage import get_object_store
from oneai.chatbots.models import StatsQuery
from oneai.errors import ValidationError, field_error
from oneai.inbox import service
from oneai.inbox.models import (
    MAX_EXPORT_IDS,
    BulkDelete,
    BulkDeleted,
    ExportFormat,
    InboxConversation,
    InboxPage,
    InboxQuery,
    InboxStats,
    InboxUpdate,
)
from oneai.timestamps import iso_z
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

EDITORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorEnvelope, "description": "FORBIDDEN: a viewer (the inbox is for editors and above)"}
}

chatbot_inbox = APIRouter(prefix="/chatbots/{chatbot_id}/conversations", tags=["inbox"])
inbox = APIRouter(prefix="/chatbot-conversations", tags=["inbox"])


@chatbot_inbox.get(
    "", summary="The chatbot's visitor conversations, newest first, filtered and searched", responses=EDITORS
)
def list_conversations(
    principal: CurrentPrincipal, db: Db, chatbot_id: PathId, query: Annotated[InboxQuery, Query()]
) -> InboxPage:
    with db.user_transaction(principal) as conn:
        return service.list_conversations(conn, chatbot_id, query)


@chatbot_inbox.get("/stats", summary="Conversations, messages and rating per UTC day", responses=EDITORS)
def stats(
    principal: CurrentPrincipal, db: Db, chatbot_id: PathId, query: Annotated[StatsQuery, Query()]
) -> InboxStats:
    with db.user_transaction(principal) as conn:
        return service.stats(conn, chatbot_id, query)


@chatbot_inbox.post("/bulk-delete", summary="Delete these of the chatbot's conversations", responses=EDITORS)
def bulk_delete(principal: CurrentPrincipal, db: Db, chatbot_id: PathId, body: BulkDelete) -> BulkDeleted:
    with db.user_transaction(principal) as conn:
        return service.bulk_delete(conn, chatbot_id, body.ids)


def _export_ids(values: list[str] | None) -> list[UUID] | None:
    """`?ids=a&ids=b` or `?ids=a,b`; none: every conversation of the chatbot."""
    if not values:
        return None
    ids: list[UUID] = []
    for index, text in enumerate(part.strip() for value in values for part in value.split(",")):
        try:
            ids.append(UUID(text))
        except ValueError:
            raise ValidationError(
                "The ids are not valid",
                details={"errors": [field_error(f"ids.{index}", "not a UUID", "uuid_parsing")]},
            ) from None
    if len(ids) > MAX_EXPORT_IDS:
        raise ValidationError(
            "Too many ids",
            details={"errors": [field_error("ids", f"at most {MAX_EXPORT_IDS}", "too_long")]},
        )
    return ids


@chatbot_inbox.get(
    "/export",
    summary="Download the conversations (all, or `ids`) as JSON, CSV or Markdown",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}, "text/markdown": {}}, "description": "the file"},
        303: {
            "description": "a large export: `Location` (and `url` in the body) is a download link for 15 minutes"
        },
        **EDITORS,
    },
)
def export(
    principal: CurrentPrincipal,
    db: Db,
    chatbot_id: PathId,
    format: ExportFormat = "json",
    ids: Annotated[list[str] | None, Query(description="conversation ids (repeated or comma-separated)")] = None,
) -> Response:
    chosen = _export_ids(ids)
    with db.user_transaction(principal) as conn:
        result = service.export_conversations(conn, chatbot_id, format, chosen, get_object_store)
    disposition = f"attachment; filename=\"{result.filename}\"; filename*=UTF-8''{quote(result.filename)}"
    if result.body is not None:
        return Response(result.body, media_type=result.media_type, headers={"content-disposition": disposition})
    assert result.url is not None
    assert result.expires_at is not None
    return JSONResponse(
        {
            "url": result.url,
            "expires_at": iso_z(result.expires_at),
            "filename": result.filename,
            "bytes": result.size,
        },
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"location": result.url},
    )


@inbox.get(
    "/{conversation_id}", summary="The thread with the visitor's info, notes, tags and rating", responses=EDITORS
)
def get_conversation(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> InboxConversation:
    with db.user_transaction(principal) as conn:
        return service.get_conversation(conn, conversation_id)


@inbox.patch("/{conversation_id}", summary="Triage: notes, tags, status", responses=EDITORS)
def update_conversation(
    principal: CurrentPrincipal, db: Db, conversation_id: PathId, body: InboxUpdate
) -> InboxConversation:
    with db.user_transaction(principal) as conn:
        return service.update_conversation(conn, conversation_id, body)


@inbox.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete with its messages",
    responses=EDITORS,
)
def delete_conversation(principal: CurrentPrincipal, db: Db, conversation_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.delete_conversation(conn, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
