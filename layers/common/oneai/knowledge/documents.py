"""The documents of a workspace's knowledge base (API.md "Documents (knowledge)"): uploads, the list, one
document, its chunks, metadata changes, deletion, reprocessing, and the knowledge search.

Every function runs in the caller's user transaction, under RLS, and starts from the caller's membership
(`require_role`: 404 for a non-member, 403 for too low a role). A document of a workspace the caller is
not a member of is invisible to RLS: 404, like an unknown id. The upload is a presigned POST to the
attachments' private bucket (`oneai.attachments.storage`), pinned to the key
`knowledge/<workspace_id>/<document_id>/<safe filename>`, the declared Content-Type and at most the
declared size (<= ONEAI_MAX_DOCUMENT_BYTES). The ingest function starts when the file lands.

S3 deletes and queue messages run after the transaction committed (the routes call them): a file is
never deleted for a row a rollback keeps, and a message never names a row not yet visible.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Final
from uuid import UUID

from oneai.attachments import storage
from oneai.chatbots import service as chatbots
from oneai.config import Settings, get_settings
from oneai.db import documents as repo
from oneai.db import knowledge as knowledge_repo
from oneai.db import workspaces as workspaces_repo
from oneai.db.connection import Connection, Database
from oneai.errors import (
    ConflictError,
    NotFoundError,
    PlanLimitError,
    UpstreamError,
    ValidationError,
    field_error,
)
from oneai.knowledge.document_models import (
    Chunk,
    Document,
    DocumentCreate,
    DocumentDetail,
    DocumentPage,
    DocumentQuota,
    DocumentStats,
    DocumentUpdate,
    DocumentUpload,
    KnowledgeHitOut,
    KnowledgeSearch,
    Progress,
)
from oneai.knowledge.parsing import DocumentUnreadableError
from oneai.knowledge.parsing._sniff import declared_kind
from oneai.logging import logger
from oneai.openrouter.client import OpenRouterClient
from oneai.openrouter.embeddings import OpenRouterEmbeddings
from oneai.openrouter.errors import OpenRouterError
from oneai.pagination import Page, PageRequest, decode_cursor, encode_cursor
from oneai.workspaces.limits import workspace_limits
from oneai.workspaces.service import require_role

NOT_FOUND: Final = "Document not found"
QUERY_EMBEDDING_TIMEOUT_SECONDS: Final = 3.0
# A retry starts only within the budget, so the whole search waits at most budget + one attempt (~9 s).
QUERY_EMBEDDING_BUDGET_SECONDS: Final = 6.0
QUERY_MAX_RETRY_AFTER: Final = 3.0
MAX_SAFE_NAME_CHARS: Final = 100


def workspace_prefix(workspace_id: UUID) -> str:
    """Every file of a workspace's documents lives under one prefix (the purge deletes by it)."""
    return f"knowledge/{workspace_id}/"


def safe_filename(filename: str) -> str:
    """`Q3 Report (final).pdf` -> `Q3_Report_final_.pdf`: ASCII letters, digits, `.`, `-`, `_` only."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._")[-MAX_SAFE_NAME_CHARS:]
    return safe or "document"


def document_key(workspace_id: UUID, document_id: UUID, filename: str) -> str:
    return f"{workspace_prefix(workspace_id)}{document_id}/{safe_filename(filename)}"


def _document(row: repo.DocumentRow) -> Document:
    return Document(
        id=row.id,
        workspace_id=row.workspace_id,
        filename=row.filename,
        media_type=row.media_type,
        size=row.size_bytes,
        status=row.status,
        progress=Progress(chunks_done=row.chunks_done, chunks_total=row.chunks_total),
        error=row.error,
        tags=row.tags,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _detail(row: repo.DocumentRow, chatbot_ids: list[UUID], retrievals_30d: int) -> DocumentDetail:
    return DocumentDetail(
        **_document(row).model_dump(),
        chatbot_ids=chatbot_ids,
        pages=row.pages,
        tokens=row.tokens,
        chunks=row.chunks,
        metadata=row.metadata,
        stats=DocumentStats(retrievals_30d=retrievals_30d),
    )


def _validated(settings: Settings, index: int | None, body: DocumentCreate) -> None:
    prefix = "" if index is None else f"documents.{index}."
    if body.size > settings.max_document_bytes:
        limit = settings.max_document_bytes
        raise ValidationError(
            f"A document may be at most {limit} bytes",
            details={"errors": [field_error(f"{prefix}size", f"must be at most {limit} bytes", "too_large")]},
        )
    try:
        declared_kind(body.media_type, body.filename)
    except DocumentUnreadableError as exc:
        raise ValidationError(
            "This file type is not accepted",
            details={"errors": [field_error(f"{prefix}media_type", str(exc), "unsupported_type")]},
        ) from None


def _quota(conn: Connection, settings: Settings, workspace_id: UUID) -> tuple[DocumentQuota, str]:
    """What the workspace's documents use of the owner's tier's limits, and that tier."""
    plan = workspaces_repo.owner_plan(conn, workspace_id)
    if plan is None:
        raise NotFoundError("Workspace not found")
    count, used_bytes = repo.usage(conn, workspace_id)
    return DocumentQuota(count=count, bytes=used_bytes, limits=workspace_limits(settings, plan.tier)), plan.tier


def create_documents(
    conn: Connection,
    settings: Settings,
    store: storage.ObjectStore,
    workspace_id: UUID,
    bodies: Sequence[DocumentCreate],
    *,
    bulk: bool = False,
) -> list[DocumentUpload]:
    """Record the documents (`uploading`) and sign their uploads; all or nothing on the plan's limits."""
    require_role(conn, workspace_id, "editor")
    for index, body in enumerate(bodies):
        _validated(settings, index if bulk else None, body)
        field = f"documents.{index}.chatbot_ids" if bulk else "chatbot_ids"
        chatbots.check_chatbots(conn, workspace_id, body.chatbot_ids, field)
    repo.lock_documents(conn, workspace_id)
    quota, tier = _quota(conn, settings, workspace_id)
    if quota.count + len(bodies) > quota.limits.documents:
        raise PlanLimitError(
            "Your plan's limit of documents is reached",
            details={"limit": quota.limits.documents, "used": quota.count, "tier": tier},
        )
    if quota.bytes + sum(b.size for b in bodies) > quota.limits.storage_bytes:
        raise PlanLimitError(
            "Your plan's limit of document storage is reached",
            details={"limit": quota.limits.storage_bytes, "used": quota.bytes, "tier": tier},
        )
    new = [
        repo.NewDocument(
            id=(document_id := uuid.uuid4()),
            filename=body.filename,
            media_type=body.media_type,
            size_bytes=body.size,
            storage_key=document_key(workspace_id, document_id, body.filename),
            tags=list(body.tags),
        )
        for body in bodies
    ]
    repo.insert_documents(conn, workspace_id, new)
    for document, body in zip(new, bodies, strict=True):
        if body.chatbot_ids:
            chatbots.link_document(conn, workspace_id, document.id, body.chatbot_ids)
    uploads = []
    for document in new:
        url, fields = store.presigned_post(
            document.storage_key,
            media_type=document.media_type,
            max_bytes=document.size_bytes,
            expires_in=settings.attachment_upload_seconds,
            unattached=False,
        )
        uploads.append(
            DocumentUpload.model_validate({"id": document.id, "upload": {"url": url, "fields": fields}})
        )
    return uploads


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_documents(
    conn: Connection,
    settings: Settings,
    workspace_id: UUID,
    page: PageRequest,
    *,
    status: str | None,
    q: str | None,
    sort: str,
    chatbot_id: UUID | None = None,
) -> DocumentPage:
    require_role(conn, workspace_id, "viewer")
    after = None
    if page.cursor:
        keys = decode_cursor(page.cursor, {"v": str, "id": UUID, "sort": str})
        if keys["sort"] != sort:
            raise ValidationError("The cursor belongs to another sort order")
        after = (keys["v"], keys["id"])
    rows = repo.list_documents(
        conn,
        workspace_id,
        status=status,
        pattern=_like_pattern(q) if q else None,
        chatbot_id=chatbot_id,
        sort=sort,
        after=after,
        limit=page.limit + 1,
    )
    column = repo.SORT_COLUMNS[sort.lstrip("-")][0]
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        last = rows[-1]
        value = getattr(last, column)
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        next_cursor = encode_cursor({"v": text, "id": str(last.id), "sort": sort})
    return DocumentPage(
        items=[_document(row) for row in rows],
        next_cursor=next_cursor,
        quota=_quota(conn, settings, workspace_id)[0],
    )


def _visible(conn: Connection, document_id: UUID) -> repo.DocumentRow:
    row = repo.get_document(conn, document_id)
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return row


def get_document(conn: Connection, document_id: UUID) -> DocumentDetail:
    return _detail(
        _visible(conn, document_id),
        chatbots.document_chatbots(conn, document_id),
        repo.retrievals_30d(conn, document_id),
    )


def update_document(conn: Connection, document_id: UUID, body: DocumentUpdate) -> DocumentDetail:
    row = _visible(conn, document_id)
    require_role(conn, row.workspace_id, "editor")
    if "filename" in body.model_fields_set and body.filename is None:
        raise ValidationError(details={"errors": [field_error("filename", "cannot be null", "null")]})
    if "tags" in body.model_fields_set and body.tags is None:
        raise ValidationError(details={"errors": [field_error("tags", "cannot be null", "null")]})
    if "chatbot_ids" in body.model_fields_set:
        if body.chatbot_ids is None:
            raise ValidationError(details={"errors": [field_error("chatbot_ids", "cannot be null", "null")]})
        chatbots.link_document(conn, row.workspace_id, document_id, body.chatbot_ids)
    if not repo.update_document(
        conn,
        document_id,
        filename=body.filename,
        tags=body.tags,
        description=body.description,
        set_description="description" in body.model_fields_set,
    ):
        raise NotFoundError(NOT_FOUND)
    return get_document(conn, document_id)


def delete_documents(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> list[str]:
    """Delete the workspace's documents among `ids` (chunks and vectors cascade); returns the keys of
    their files, for `storage.delete_after_commit` once the transaction committed. Ids not in the workspace are skipped."""
    require_role(conn, workspace_id, "editor")
    return repo.delete_documents(conn, workspace_id, ids)


def delete_document(conn: Connection, document_id: UUID) -> list[str]:
    row = _visible(conn, document_id)
    keys = delete_documents(conn, row.workspace_id, [document_id])
    if not keys:
        raise NotFoundError(NOT_FOUND)  # deleted by a concurrent request
    return keys


def erase_workspace_files(db: Database, user_id: UUID) -> None:
    """Account erasure's step: the document files of the workspaces the erasure deletes with the user
    (their personal one, and those they alone own), by prefix. Idempotent."""
    if not get_settings().attachments_bucket:
        return  # no bucket configured: nothing can have been stored
    with db.service_transaction() as conn:
        workspace_ids = repo.workspaces_erased_with(conn, user_id)
    store = storage.get_object_store()
    deleted = sum(store.delete_prefix(workspace_prefix(workspace_id)) for workspace_id in workspace_ids)
    logger.info("erased workspaces' document files deleted", extra={"user_id": str(user_id), "objects": deleted})


def reprocess(conn: Connection, document_id: UUID) -> list[UUID]:
    """Back to `queued`, error and progress cleared; returns the id to enqueue after the commit. A document
    being processed is 409: a worker holds it (the sweep fails it if that worker died)."""
    row = _visible(conn, document_id)
    require_role(conn, row.workspace_id, "editor")
    queued = repo.requeue(conn, row.workspace_id, [document_id], failed_only=False)
    if not queued:
        if repo.get_document(conn, document_id) is None:
            raise NotFoundError(NOT_FOUND)
        raise ConflictError("The document is being processed; reprocess it once it is ready or failed")
    return queued


def reprocess_failed(conn: Connection, workspace_id: UUID) -> list[UUID]:
    require_role(conn, workspace_id, "editor")
    return repo.requeue(conn, workspace_id, repo.failed_ids(conn, workspace_id), failed_only=True)


def download_url(conn: Connection, settings: Settings, store: storage.ObjectStore, document_id: UUID) -> str:
    row = _visible(conn, document_id)
    if row.status == "uploading" and store.head(row.storage_key) is None:
        raise NotFoundError("The file has not been uploaded yet")
    return store.presigned_get(
        row.storage_key,
        media_type=row.media_type,
        filename=row.filename,
        expires_in=settings.attachment_url_seconds,
    )


def list_chunks(conn: Connection, document_id: UUID, page: PageRequest) -> Page[Chunk]:
    _visible(conn, document_id)
    after = decode_cursor(page.cursor, {"index": int})["index"] if page.cursor else -1
    rows = repo.list_chunks(conn, document_id, after_index=after, limit=page.limit + 1)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    items = [
        Chunk(id=r.id, index=r.index, text=r.text, page=r.page, section=r.section, tokens=r.tokens) for r in rows
    ]
    return Page[Chunk](items=items, next_cursor=encode_cursor({"index": rows[-1].index}) if more else None)


async def _embed_query(settings: Settings, query: str) -> list[float]:
    async with OpenRouterClient(settings) as client:
        # One short text someone waits for, in a 15 s function: short attempts, every retry within the
        # budget (the ingest's defaults, 60 s an attempt, are for batches of chunks).
        retry = replace(client.retry, budget=QUERY_EMBEDDING_BUDGET_SECONDS, max_retry_after=QUERY_MAX_RETRY_AFTER)
        embeddings = OpenRouterEmbeddings(client, timeout=QUERY_EMBEDDING_TIMEOUT_SECONDS, retry=retry)
        result = await embeddings.embed([query])
    return result.vectors[0]


def embed_query(settings: Settings, query: str) -> list[float]:
    """The query's embedding (before the transaction opens: no connection is held during the call)."""
    if not query.strip():
        raise ValidationError(details={"errors": [field_error("query", "must not be blank", "blank")]})
    try:
        return asyncio.run(_embed_query(settings, query))
    except OpenRouterError as error:
        # Its type only: an upstream message could echo the query.
        logger.warning("query embedding failed", extra={"error_type": type(error).__name__})
        raise UpstreamError("The embedding service failed; try the search again") from None


def require_member(conn: Connection, workspace_id: UUID) -> None:
    require_role(conn, workspace_id, "viewer")


def search(
    conn: Connection, workspace_id: UUID, body: KnowledgeSearch, embedding: Sequence[float]
) -> list[KnowledgeHitOut]:
    require_role(conn, workspace_id, "viewer")
    hits = knowledge_repo.search_chunks(
        conn,
        workspace_id=workspace_id,
        embedding=embedding,
        query=body.query,
        top_k=body.top_k,
        min_score=body.min_score,
        document_ids=body.document_ids,
    )
    return [
        KnowledgeHitOut(
            chunk_id=h.chunk_id,
            document_id=h.document_id,
            filename=h.filename,
            page=h.page,
            index=h.index,
            text=h.text,
            score=h.score,
        )
        for h in hits
    ]
