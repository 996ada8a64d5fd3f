"""Data layer of the documents (API.md "Documents (knowledge)"): every statement runs as the caller, under
RLS (members read, editors write; supabase/migrations/20261124000000_knowledge.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg import sql
from psycopg.rows import class_row

from oneai.db.connection import Connection


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: UUID
    workspace_id: UUID
    filename: str
    media_type: str
    size_bytes: int
    storage_key: str
    status: str
    chunks_done: int
    chunks_total: int | None
    error: str | None
    pages: int | None
    tokens: int | None
    tags: list[str]
    description: str | None
    metadata: dict[str, Any]
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    chunks: int


@dataclass(frozen=True, slots=True)
class NewDocument:
    id: UUID
    filename: str
    media_type: str
    size_bytes: int
    storage_key: str
    tags: list[str]


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: UUID
    index: int
    text: str
    page: int | None
    section: str | None
    tokens: int


_COLUMNS = """d.id, d.workspace_id, d.filename, d.media_type, d.size_bytes, d.storage_key, d.status, d.chunks_done,
  d.chunks_total, d.error, d.pages, d.tokens, d.tags, d.description, d.metadata, d.created_by, d.created_at,
  d.updated_at"""
_CHUNK_COUNT = "(select count(*)::int from public.document_chunks c where c.document_id = d.id) as chunks"

# Two creates in one workspace at once must not both fit under the last free slot: they take turns (a
# transaction-scoped advisory lock on the workspace; a caller can take it without any table privilege).
LOCK_DOCUMENTS = "select pg_advisory_xact_lock(hashtextextended('oneai.documents:' || %s::text, 0))"
USAGE = """
select count(*)::int as count, coalesce(sum(size_bytes), 0)::bigint as bytes
from public.documents where workspace_id = %s"""
INSERT = """
insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key, tags, created_by)
values (%s, %s, %s, %s, %s, %s, %s, auth.uid())"""
GET = f"select {_COLUMNS}, {_CHUNK_COUNT} from public.documents d where d.id = %s"
UPDATE = """
update public.documents set
  filename = coalesce(%(filename)s, filename),
  tags = coalesce(%(tags)s, tags),
  description = case when %(set_description)s then %(description)s else description end
where id = %(id)s
returning id"""
DELETE = "delete from public.documents where workspace_id = %s and id = any(%s) returning id, storage_key"
REQUEUE = """
update public.documents set status = 'queued', error = null, chunks_done = 0, chunks_total = null,
  processing_started_at = null, attempts = 0
where workspace_id = %(workspace_id)s and id = any(%(ids)s)
  and status <> 'processing'
  and (not %(failed_only)s or status = 'failed')
returning id"""
CHUNKS = """
select c.id, c.chunk_index as index, c.text, c.page, c.section, c.tokens
from public.document_chunks c
where c.document_id = %s and c.chunk_index > %s
order by c.chunk_index limit %s"""
# The workspaces erasing the user deletes (oneai_private.erase_user): their personal one, and those they
# own with no other owner. Run as the service (the erasure's step), before the erasure.
ERASED_WITH_USER = """
select w.id from public.workspaces w
where (w.personal and w.owner_id = %(user_id)s)
   or (not w.personal
       and exists (select 1 from public.workspace_members m
                   where m.workspace_id = w.id and m.user_id = %(user_id)s and m.role = 'owner')
       and not exists (select 1 from public.workspace_members m
                       where m.workspace_id = w.id and m.role = 'owner' and m.user_id <> %(user_id)s))"""
FAILED_IDS = "select id from public.documents where workspace_id = %s and status = 'failed'"

# The sort keys of the list: the column, and its type (the cursor holds its value as text).
SORT_COLUMNS: Final = {
    "created_at": ("created_at", "timestamptz"),
    "size": ("size_bytes", "bigint"),
    "status": ("status", "text"),
}


def lock_documents(conn: Connection, workspace_id: UUID) -> None:
    conn.execute(LOCK_DOCUMENTS, (str(workspace_id),))


def usage(conn: Connection, workspace_id: UUID) -> tuple[int, int]:
    row = conn.execute(USAGE, (workspace_id,)).fetchone()
    assert row is not None
    return int(row["count"]), int(row["bytes"])


def insert_documents(conn: Connection, workspace_id: UUID, documents: Sequence[NewDocument]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            INSERT,
            [
                (d.id, workspace_id, d.filename, d.media_type, d.size_bytes, d.storage_key, d.tags)
                for d in documents
            ],
        )


RETRIEVALS_30D = "select oneai_private.document_retrievals_30d(%s) as retrievals"


def retrievals_30d(conn: Connection, document_id: UUID) -> int:
    """Replies of the last 30 days that used a passage of the document (0 for one the caller cannot see)."""
    row = conn.execute(RETRIEVALS_30D, (document_id,)).fetchone()
    return int(row["retrievals"] or 0) if row else 0


def get_document(conn: Connection, document_id: UUID) -> DocumentRow | None:
    with conn.cursor(row_factory=class_row(DocumentRow)) as cur:
        return cur.execute(GET, (document_id,)).fetchone()


def list_documents(
    conn: Connection,
    workspace_id: UUID,
    *,
    status: str | None,
    pattern: str | None,
    sort: str,
    chatbot_id: UUID | None = None,
    after: tuple[str, UUID] | None,
    limit: int,
) -> list[DocumentRow]:
    """The workspace's documents by `sort` (`-` first: descending), then id; `pattern` an ILIKE pattern
    matched against the filename and each tag; `chatbot_id`: only the documents of that (live) chatbot;
    `after`: the (sort value as text, id) of the last row seen."""
    column, type_name = SORT_COLUMNS[sort.lstrip("-")]
    descending = sort.startswith("-")
    order = sql.SQL("desc" if descending else "asc")
    statement = sql.SQL(
        """select {columns}, {chunk_count} from public.documents d
where d.workspace_id = %(workspace_id)s
  and (%(status)s::text is null or d.status = %(status)s::text)
  and (%(chatbot_id)s::uuid is null or exists (
       select 1 from public.chatbot_documents l join public.chatbots b on b.id = l.chatbot_id
       where l.document_id = d.id and l.chatbot_id = %(chatbot_id)s::uuid and b.deleted_at is null))
  and (%(pattern)s::text is null or d.filename ilike %(pattern)s::text
       or exists (select 1 from unnest(d.tags) t where t ilike %(pattern)s::text))
  and (%(after_id)s::uuid is null or (d.{column}, d.id) {compare} (%(after_value)s::{type}, %(after_id)s::uuid))
order by d.{column} {order}, d.id {order}
limit %(limit)s"""
    ).format(
        columns=sql.SQL(_COLUMNS),
        chunk_count=sql.SQL(_CHUNK_COUNT),
        column=sql.Identifier(column),
        compare=sql.SQL("<" if descending else ">"),
        type=sql.SQL(type_name),
        order=order,
    )
    params = {
        "workspace_id": workspace_id,
        "status": status,
        "pattern": pattern,
        "chatbot_id": chatbot_id,
        "after_value": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(DocumentRow)) as cur:
        return cur.execute(statement, params).fetchall()


def update_document(
    conn: Connection,
    document_id: UUID,
    *,
    filename: str | None,
    tags: list[str] | None,
    description: str | None,
    set_description: bool,
) -> bool:
    params = {
        "id": document_id,
        "filename": filename,
        "tags": tags,
        "description": description,
        "set_description": set_description,
    }
    return conn.execute(UPDATE, params).fetchone() is not None


def delete_documents(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> list[str]:
    """Delete these documents of the workspace (their chunks cascade); returns their files' keys."""
    return [str(row["storage_key"]) for row in conn.execute(DELETE, (workspace_id, list(ids))).fetchall()]


def requeue(conn: Connection, workspace_id: UUID, ids: Sequence[UUID], *, failed_only: bool) -> list[UUID]:
    params = {"workspace_id": workspace_id, "ids": list(ids), "failed_only": failed_only}
    return [UUID(str(row["id"])) for row in conn.execute(REQUEUE, params).fetchall()]


def failed_ids(conn: Connection, workspace_id: UUID) -> list[UUID]:
    return [UUID(str(row["id"])) for row in conn.execute(FAILED_IDS, (workspace_id,)).fetchall()]


def list_chunks(conn: Connection, document_id: UUID, *, after_index: int, limit: int) -> list[ChunkRow]:
    with conn.cursor(row_factory=class_row(ChunkRow)) as cur:
        return cur.execute(CHUNKS, (document_id, after_index, limit)).fetchall()


def workspaces_erased_with(conn: Connection, user_id: UUID) -> list[UUID]:
    return [UUID(str(row["id"])) for row in conn.execute(ERASED_WITH_USER, {"user_id": user_id}).fetchall()]
