"""Data layer of the knowledge ingest (issue 24): the ingest worker's claim of a document, its progress,
the one transaction that stores the chunks and marks it ready, its failures, and the sweep of documents
left behind. Run as the service (no member is behind a queue message).

A claim is fenced by the document's `attempts` and `processing_started_at`: the claim increments the
one and sets the other to its transaction's time, and every later write names both values it got, so a
worker that was presumed dead (its claim taken over after `stale_seconds`) can no longer write anything
when it wakes up. `attempts` alone is not enough: a reprocess sets it back to 0, so the claim after a
reprocess gets the same number a worker presumed dead had; no two claims get the same start time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.connection import Connection
from oneai.db.knowledge import vector_literal

MAX_SECTION_CHARS = 1000


@dataclass(frozen=True, slots=True)
class DocumentState:
    id: UUID
    status: str
    content_sha256: bytes | None
    processing_started_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDocument:
    id: UUID
    workspace_id: UUID
    filename: str
    media_type: str
    storage_key: str
    # the fence of this claim: every later write names both
    attempts: int
    processing_started_at: datetime
    # workspaces.settings -> 'chunking' (null: the defaults)
    chunking: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChunkRow:
    text: str
    page: int | None
    section: str | None
    tokens: int
    embedding: Sequence[float]


@dataclass(frozen=True, slots=True)
class EmbeddingCost:
    model: str
    tokens: int
    cost: float | None


def find_document(
    conn: Connection, *, document_id: UUID | None = None, storage_key: str | None = None
) -> DocumentState | None:
    with conn.cursor(row_factory=class_row(DocumentState)) as cur:
        return cur.execute(
            "select id, status, content_sha256, processing_started_at from public.documents"
            " where id = %(id)s or storage_key = %(key)s",
            {"id": document_id, "key": storage_key},
        ).fetchone()


def mark_landed(conn: Connection, storage_keys: Sequence[str]) -> list[UUID]:
    """The documents whose file landed under these keys go from `uploading` to `queued` (waiting for a
    worker); any other status stays (a worker may have claimed it already, or it is a replaced file of a
    processed document: the ingest decides by the file's hash). The ids of those marked."""
    rows = conn.execute(
        "update public.documents set status = 'queued'"
        " where storage_key = any(%(keys)s) and status = 'uploading' returning id",
        {"keys": list(storage_keys)},
    ).fetchall()
    return [row["id"] for row in rows]


def claim_document(
    conn: Connection, document_id: UUID, *, stale_seconds: int, changed_file_sha256: bytes | None = None
) -> ClaimedDocument | None:
    """Take the document for processing: from `uploading` or `queued`, from `processing` abandoned for
    longer than `stale_seconds`, and (a new file arrived under its key) from `ready` or `failed` when the
    file's hash differs from the one processed. None: someone else has it, or it is done."""
    with conn.cursor(row_factory=class_row(ClaimedDocument)) as cur:
        return cur.execute(
            """
            update public.documents d
               set status = 'processing', attempts = d.attempts + 1, processing_started_at = now(),
                   chunks_done = 0, chunks_total = null, error = null
              from public.workspaces w
             where d.id = %(id)s and w.id = d.workspace_id
               and (d.status in ('uploading', 'queued')
                    or (d.status = 'processing'
                        and d.processing_started_at < now() - make_interval(secs => %(stale)s))
                    or (%(sha)s::bytea is not null and d.status in ('ready', 'failed')
                        and d.content_sha256 is distinct from %(sha)s::bytea))
            returning d.id, d.workspace_id, d.filename, d.media_type, d.storage_key, d.attempts,
                      d.processing_started_at, w.settings -> 'chunking' as chunking
            """,
            {"id": document_id, "stale": stale_seconds, "sha": changed_file_sha256},
        ).fetchone()


_FENCE = "id = %(id)s and status = 'processing' and attempts = %(attempt)s and processing_started_at = %(started)s"


def _fence(claim: ClaimedDocument) -> dict[str, Any]:
    return {"id": claim.id, "attempt": claim.attempts, "started": claim.processing_started_at}


def set_progress(conn: Connection, claim: ClaimedDocument, *, chunks_done: int, chunks_total: int) -> bool:
    """False: the claim was lost (the document was taken over, deleted or reprocessed)."""
    row = conn.execute(
        f"update public.documents set chunks_done = %(done)s, chunks_total = %(total)s where {_FENCE} returning id",
        {**_fence(claim), "done": chunks_done, "total": chunks_total},
    ).fetchone()
    return row is not None


def store_ready(
    conn: Connection,
    claim: ClaimedDocument,
    *,
    chunks: Sequence[ChunkRow],
    pages: int | None,
    content_sha256: bytes,
    cost: EmbeddingCost,
) -> bool:
    """In the caller's one transaction: the document `ready` with its figures, its old chunks (an earlier
    processing) replaced by `chunks`. False (nothing written): the claim was lost."""
    row = conn.execute(
        f"""
        update public.documents
           set status = 'ready', chunks_done = %(n)s, chunks_total = %(n)s, pages = %(pages)s,
               tokens = %(tokens)s, content_sha256 = %(sha)s, processing_started_at = null,
               embedding_model = %(model)s, embedding_tokens = %(embedding_tokens)s,
               embedding_cost = %(cost)s
         where {_FENCE}
        returning id
        """,
        {
            **_fence(claim),
            "n": len(chunks),
            "pages": pages,
            "tokens": sum(chunk.tokens for chunk in chunks),
            "sha": content_sha256,
            "model": cost.model,
            "embedding_tokens": cost.tokens,
            "cost": None if cost.cost is None else Decimal(str(cost.cost)),
        },
    ).fetchone()
    if row is None:
        return False
    conn.execute("delete from public.document_chunks where document_id = %s", (claim.id,))
    with conn.cursor().copy(
        "copy public.document_chunks (workspace_id, document_id, chunk_index, text, page, section, tokens,"
        " embedding) from stdin"
    ) as copy:
        for index, chunk in enumerate(chunks):
            section = chunk.section[:MAX_SECTION_CHARS] if chunk.section else None
            copy.write_row(
                (
                    claim.workspace_id,
                    claim.id,
                    index,
                    chunk.text,
                    chunk.page,
                    section,
                    chunk.tokens,
                    vector_literal(chunk.embedding),
                )
            )
    return True


def fail_claimed(conn: Connection, claim: ClaimedDocument, reason: str, *, content_sha256: bytes | None) -> bool:
    row = conn.execute(
        f"update public.documents set status = 'failed', error = %(reason)s, processing_started_at = null,"
        f" content_sha256 = coalesce(%(sha)s, content_sha256) where {_FENCE} returning id",
        {**_fence(claim), "reason": reason, "sha": content_sha256},
    ).fetchone()
    return row is not None


def release_for_retry(conn: Connection, claim: ClaimedDocument) -> bool:
    """Back to `queued` (the queue delivers its message again): claimable at once by the next delivery."""
    row = conn.execute(
        f"update public.documents set status = 'queued', processing_started_at = null where {_FENCE} returning id",
        _fence(claim),
    ).fetchone()
    return row is not None


@dataclass(frozen=True, slots=True)
class SweepResult:
    requeued: list[UUID]
    failed_stalled: int
    failed_uploads: int
    # `queued` documents untouched for `queued_seconds`: their message was lost (sent again)
    resent_queued: list[UUID]


def sweep_documents(
    conn: Connection,
    *,
    stale_seconds: int,
    max_attempts: int,
    upload_hours: int,
    queued_seconds: int,
    stalled_reason: str,
    upload_reason: str,
) -> SweepResult:
    """Documents abandoned by their worker (`processing` for longer than `stale_seconds`): back to `queued`
    while attempts remain (the caller sends their messages), else `failed`; `uploading` documents older
    than `upload_hours`: `failed` (the file never came); `queued` documents nothing touched for
    `queued_seconds` (their message was lost: SQS refused it after the commit, or its last delivery could
    not write): touched, and returned for the caller to send their messages again (a duplicate message is
    harmless, the claim takes a document once). Rows are locked with skip locked, so two sweeps never
    take the same one."""
    stalled = conn.execute(
        """
        with stalled as (
          select id, attempts from public.documents
           where status = 'processing' and processing_started_at < now() - make_interval(secs => %(stale)s)
           for update skip locked
        )
        update public.documents d
           set status = case when s.attempts < %(max)s then 'queued' else 'failed' end,
               error = case when s.attempts < %(max)s then null else %(reason)s end,
               processing_started_at = null
          from stalled s
         where d.id = s.id
        returning d.id, d.status
        """,
        {"stale": stale_seconds, "max": max_attempts, "reason": stalled_reason},
    ).fetchall()
    uploads = conn.execute(
        """
        with abandoned as (
          select id from public.documents
           where status = 'uploading' and created_at < now() - make_interval(hours => %(hours)s)
           for update skip locked
        )
        update public.documents d set status = 'failed', error = %(reason)s
          from abandoned a where d.id = a.id
        returning d.id
        """,
        {"hours": upload_hours, "reason": upload_reason},
    ).fetchall()
    # (the rows the statement above just set `queued` have updated_at = now(): not picked again here)
    lost = conn.execute(
        """
        with lost as (
          select id from public.documents
           where status = 'queued' and updated_at < now() - make_interval(secs => %(queued)s)
           order by updated_at
           limit 1000
           for update skip locked
        )
        update public.documents d set status = 'queued'
          from lost l where d.id = l.id
        returning d.id
        """,
        {"queued": queued_seconds},
    ).fetchall()
    return SweepResult(
        requeued=[row["id"] for row in stalled if row["status"] == "queued"],
        failed_stalled=sum(1 for row in stalled if row["status"] == "failed"),
        failed_uploads=len(uploads),
        resent_queued=[row["id"] for row in lost],
    )
