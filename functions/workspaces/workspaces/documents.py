"""Routes of a workspace's knowledge base (API.md "Documents (knowledge)" and `knowledge/search`): each opens
the caller's transaction and calls `oneai.knowledge.documents`; S3 deletes and queue messages follow the
commit."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import RedirectResponse

from oneai.attachments.storage import delete_after_commit, get_object_store
from oneai.knowledge import documents as service
from oneai.knowledge.document_models import (
    Chunk,
    DocumentCreate,
    DocumentDetail,
    DocumentIds,
    DocumentPage,
    DocumentsCreate,
    DocumentSort,
    DocumentStatus,
    DocumentUpdate,
    DocumentUpload,
    DocumentUploads,
    KnowledgeResults,
    KnowledgeSearch,
    QueuedDocuments,
)
from oneai.knowledge.ingest_queue import enqueue_ingest
from oneai.pagination import DEFAULT_LIMIT, Page, PageRequest
from oneai.web import CurrentPrincipal, Db
from oneai.web.ids import PathId
from oneai.web.paging import Cursor, Limit
from workspaces.routes import PLAN_LIMIT, refused

UNSUPPORTED = refused(422, "VALIDATION_ERROR: a file type not accepted, or over ONEAI_MAX_DOCUMENT_BYTES")

workspace_documents = APIRouter(prefix="/workspaces/{workspace_id}", tags=["documents"])
documents = APIRouter(prefix="/documents", tags=["documents"])


@workspace_documents.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    summary="Start a document's upload (editors): the row, and a presigned POST for its file",
    responses={**PLAN_LIMIT, **UNSUPPORTED},
)
def create_document(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: DocumentCreate
) -> DocumentUpload:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        return service.create_documents(conn, db.settings, store, workspace_id, [body])[0]


@workspace_documents.post(
    "/documents/bulk",
    status_code=status.HTTP_201_CREATED,
    summary="Start several uploads at once (editors): all or none within the plan's limits",
    responses={**PLAN_LIMIT, **UNSUPPORTED},
)
def create_documents(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: DocumentsCreate
) -> DocumentUploads:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        items = service.create_documents(conn, db.settings, store, workspace_id, body.documents, bulk=True)
    return DocumentUploads(items=items)


@workspace_documents.get("/documents", summary="The workspace's documents, with the quota used")
def list_documents(
    principal: CurrentPrincipal,
    db: Db,
    workspace_id: PathId,
    status: DocumentStatus | None = None,
    chatbot_id: Annotated[UUID | None, Query(description="only the documents of this chatbot")] = None,
    q: Annotated[str | None, Query(max_length=200, description="in the filename or a tag")] = None,
    sort: DocumentSort = "-created_at",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DocumentPage:
    with db.user_transaction(principal) as conn:
        return service.list_documents(
            conn,
            db.settings,
            workspace_id,
            PageRequest(limit=limit, cursor=cursor),
            status=status,
            q=q,
            sort=sort,
            chatbot_id=chatbot_id,
        )


@workspace_documents.post(
    "/documents/bulk-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete these documents, their files and vectors (editors; ids of other workspaces are skipped)",
)
def bulk_delete(principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: DocumentIds) -> Response:
    with db.user_transaction(principal) as conn:
        keys = service.delete_documents(conn, workspace_id, body.ids)
    delete_after_commit(keys, kind="document files")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@workspace_documents.post("/documents/bulk-reprocess", summary="Process the failed documents again (editors)")
def bulk_reprocess(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> QueuedDocuments:
    with db.user_transaction(principal) as conn:
        ids = service.reprocess_failed(conn, workspace_id)
    enqueue_ingest(ids)
    return QueuedDocuments(ids=ids)


@workspace_documents.post(
    "/knowledge/search",
    summary="Search the knowledge base as a chatbot would (hybrid: vector and full text)",
    responses=refused(502, "UPSTREAM_ERROR: the query could not be embedded; try again"),
)
def search(principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: KnowledgeSearch) -> KnowledgeResults:
    with db.user_transaction(principal) as conn:  # a non-member's 404 before any embedding is paid for
        service.require_member(conn, workspace_id)
    embedding = service.embed_query(db.settings, body.query)
    with db.user_transaction(principal) as conn:
        return KnowledgeResults(items=service.search(conn, workspace_id, body, embedding))


@documents.get("/{document_id}", summary="A document with its pages, tokens, chunks and progress")
def get_document(principal: CurrentPrincipal, db: Db, document_id: PathId) -> DocumentDetail:
    with db.user_transaction(principal) as conn:
        return service.get_document(conn, document_id)


@documents.patch("/{document_id}", summary="Change the filename, tags, description or chatbots (editors)")
def update_document(
    principal: CurrentPrincipal, db: Db, document_id: PathId, body: DocumentUpdate
) -> DocumentDetail:
    with db.user_transaction(principal) as conn:
        return service.update_document(conn, document_id, body)


@documents.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete the document, its file and vectors"
)
def delete_document(principal: CurrentPrincipal, db: Db, document_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        keys = service.delete_document(conn, document_id)
    delete_after_commit(keys, kind="document files")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@documents.post(
    "/{document_id}/reprocess",
    summary="Process the document again (editors)",
    responses=refused(409, "CONFLICT: the document is being processed"),
)
def reprocess(principal: CurrentPrincipal, db: Db, document_id: PathId) -> DocumentDetail:
    # The answer is read in the transaction that queued the document: after the message is sent the
    # ingest may already have claimed it, and the answer would say `processing` instead of `queued`.
    with db.user_transaction(principal) as conn:
        ids = service.reprocess(conn, document_id)
        detail = service.get_document(conn, document_id)
    enqueue_ingest(ids)
    return detail


@documents.get(
    "/{document_id}/download",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="302 to a short-lived presigned GET of the file",
    responses=refused(404, "NOT_FOUND: no such document, or its file has not been uploaded yet"),
)
def download(principal: CurrentPrincipal, db: Db, document_id: PathId) -> RedirectResponse:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        url = service.download_url(conn, db.settings, store, document_id)
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@documents.get("/{document_id}/chunks", summary="The document's chunks, in order")
def list_chunks(
    principal: CurrentPrincipal, db: Db, document_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Chunk]:
    with db.user_transaction(principal) as conn:
        return service.list_chunks(conn, document_id, PageRequest(limit=limit, cursor=cursor))
