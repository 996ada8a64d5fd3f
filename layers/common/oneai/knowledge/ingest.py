"""The knowledge ingest (issue 24, docs/architecture.md "The knowledge ingest"): one queue message ->
the documents it names -> each claimed, read from S3, parsed, chunked, embedded in batches and stored.

Messages: an S3 `ObjectCreated` notification (the upload arrived; its records name keys under
`knowledge/`), S3's `s3:TestEvent` (sent once when the notification is configured; nothing to do), or
`{"document_id": "..."}` (a reprocess, or the sweep's requeue; `oneai.knowledge.ingest_queue`).

Delivery is at least once, so every step is idempotent: the claim (`oneai.db.knowledge_ingest`) takes a
document only from `uploading`/`queued`, from a `processing` abandoned past `ONEAI_INGEST_STALE_SECONDS`,
or from `ready`/`failed` when a different file arrived under its key; anything else is skipped, but for an
S3 notification that finds a live worker holding its document (it may announce a file that replaced the
one being processed): that one is retried later, when the file's hash decides.

Outcomes: a file that cannot be read as a document fails at once with the parser's reason (retrying
cannot help). An embedding failure raises `RetryLaterError` so the message stays on the queue and comes
back after its visibility timeout, the document back in `queued`; on the last delivery (the queue's
maxReceiveCount, `ONEAI_INGEST_MAX_ATTEMPTS`) it fails instead. A worker that dies mid-way leaves the
document `processing`: the next delivery or the sweep (`sweep_stuck_documents`) takes it over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote_plus
from uuid import UUID

from pydantic import ValidationError

from oneai.attachments.storage import ObjectStore
from oneai.config import Settings
from oneai.db.connection import Database
from oneai.db.knowledge_ingest import (
    ChunkRow,
    ClaimedDocument,
    EmbeddingCost,
    claim_document,
    fail_claimed,
    find_document,
    release_for_retry,
    set_progress,
    store_ready,
    sweep_documents,
)
from oneai.events import get_publisher
from oneai.knowledge.chunking import DEFAULT_SETTINGS, Chunk, ChunkingSettings, chunk_document
from oneai.knowledge.ingest_queue import enqueue_ingest
from oneai.knowledge.parsing import DocumentUnreadableError, ParsingLimits, parse_document
from oneai.logging import logger
from oneai.openrouter import OpenRouterClient, OpenRouterEmbeddings, OpenRouterError
from oneai.openrouter.embeddings import EmbeddingUsage, plan_batches

KNOWLEDGE_PREFIX: Final = "knowledge/"
EMBEDDING_FAILED: Final = "the embedding service failed; retry"
NO_TEXT: Final = "the file holds no text to index"
FILE_MISSING: Final = "the file is missing; upload it again"
STALLED: Final = "processing stopped before it finished, several times; retry"
UPLOAD_NEVER_COMPLETED: Final = "the upload never completed"
# A `queued` document nothing touched for this long lost its message: twice the ingest queue's visibility
# timeout (template.yaml IngestQueue, 3600 s), so even a message waiting to be retried has come back.
QUEUED_LOST_SECONDS: Final = 2 * 3600
# The domain events of a document's outcome (after its commit; ids, names and numbers, never its text).
EVENT_SOURCE: Final = "oneai.knowledge"
DOCUMENT_PROCESSED: Final = "DocumentProcessed"
DOCUMENT_FAILED: Final = "DocumentFailed"


class IngestResult(StrEnum):
    READY = "ready"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """What a message names: a document by id (reprocess) or its file's key (S3)."""

    document_id: UUID | None = None
    storage_key: str | None = None


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    ref: DocumentRef
    result: IngestResult
    document_id: UUID | None = None
    reason: str | None = None


class RetryLaterError(Exception):
    """The document could not be processed now (the embedding service failed): the message must stay on
    the queue. The document is `queued` again."""


class _ClaimLostError(Exception):
    """Another worker took the document over (this one was presumed dead), or it was deleted."""


class MalformedMessageError(ValueError):
    """A message that is neither an S3 notification nor `{"document_id"}` nor `{"storage_key"}`: retrying
    cannot help."""


def document_refs(body: str) -> list[DocumentRef]:
    try:
        message = json.loads(body)
    except ValueError:
        raise MalformedMessageError("the message is not JSON") from None
    if not isinstance(message, dict):
        raise MalformedMessageError("the message is not an object")
    if message.get("Event") == "s3:TestEvent":
        return []
    if isinstance(message.get("storage_key"), str):  # a landed file, from the intake (oneai.knowledge.intake)
        key = message["storage_key"]
        if not key.startswith(KNOWLEDGE_PREFIX):
            raise MalformedMessageError("storage_key is not a document's key")
        return [DocumentRef(storage_key=key)]
    if "document_id" in message:
        try:
            return [DocumentRef(document_id=UUID(str(message["document_id"])))]
        except ValueError:
            raise MalformedMessageError("document_id is not a UUID") from None
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedMessageError("neither an S3 notification nor a document_id")
    refs: list[DocumentRef] = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        # S3 sends keys URL-encoded (a space as '+')
        key = unquote_plus(str(record["s3"]["object"]["key"]))
        if key.startswith(KNOWLEDGE_PREFIX):
            refs.append(DocumentRef(storage_key=key))
    return refs


def _chunking_settings(raw: dict[str, Any] | None) -> ChunkingSettings:
    if not raw:
        return DEFAULT_SETTINGS
    try:
        return ChunkingSettings.model_validate(raw)
    except ValidationError:
        logger.warning("workspace chunking settings invalid; defaults used")
        return DEFAULT_SETTINGS


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit:,} bytes"


EmbeddingsFactory = Callable[[OpenRouterClient], OpenRouterEmbeddings]


class Ingestor:
    def __init__(
        self,
        database: Database,
        store: ObjectStore,
        settings: Settings,
        *,
        embeddings: EmbeddingsFactory = OpenRouterEmbeddings,
    ) -> None:
        self.database = database
        self.store = store
        self.settings = settings
        self.embeddings = embeddings

    def ingest_message(self, body: str, *, receive_count: int) -> list[IngestOutcome]:
        """Every document the message names. Raises `RetryLaterError` when one must be tried again (the
        others are done: their repeat is skipped by the claim)."""
        outcomes: list[IngestOutcome] = []
        retry: RetryLaterError | None = None
        for ref in document_refs(body):
            try:
                outcomes.append(self.ingest(ref, receive_count=receive_count))
            except RetryLaterError as exc:
                retry = exc
        if retry is not None:
            raise retry
        return outcomes

    def ingest(self, ref: DocumentRef, *, receive_count: int) -> IngestOutcome:
        with self.database.service_transaction() as conn:
            state = find_document(conn, document_id=ref.document_id, storage_key=ref.storage_key)
        if state is None:  # deleted since, or a file nobody registered
            if ref.storage_key is not None:
                # The file landed after its document was deleted (the presigned POST outlives the row, and
                # the delete's S3 call ran before the file existed): nothing else would ever delete it.
                # A document's row is committed before its upload is signed, so no live row is behind it.
                try:
                    self.store.delete([ref.storage_key])
                except Exception as exc:  # best effort: a retry would only bring the same answer
                    logger.warning("file without a document not deleted", extra={"error_type": type(exc).__name__})
                else:
                    logger.info("file without a document deleted")
            return IngestOutcome(ref, IngestResult.SKIPPED)
        data: bytes | None = None
        changed_sha: bytes | None = None
        if ref.storage_key is not None and state.status in {"ready", "failed"}:
            # the same upload notified twice, or a new file under the key: only the latter is processed
            try:
                data = self._read(ref.storage_key)
            except DocumentUnreadableError:  # a new file over the limit: the processed one stays
                return IngestOutcome(ref, IngestResult.SKIPPED, state.id)
            if data is None:
                return IngestOutcome(ref, IngestResult.SKIPPED, state.id)
            changed_sha = hashlib.sha256(data).digest()
            if changed_sha == state.content_sha256:
                return IngestOutcome(ref, IngestResult.SKIPPED, state.id)
        with self.database.service_transaction() as conn:
            claim = claim_document(
                conn, state.id, stale_seconds=self.settings.ingest_stale_seconds, changed_file_sha256=changed_sha
            )
        if claim is None:
            if ref.storage_key is not None and receive_count < self.settings.ingest_max_attempts:
                with self.database.service_transaction() as conn:
                    held = find_document(conn, storage_key=ref.storage_key)
                if held is not None and held.status == "processing":
                    # A live worker holds the document and may have read the file before this upload
                    # replaced it (the presigned POST stays valid for its window): the notification comes
                    # back after the visibility timeout, when the file's hash decides (a duplicate of the
                    # same upload is skipped then).
                    raise RetryLaterError(str(state.id))
            return IngestOutcome(ref, IngestResult.SKIPPED, state.id)
        last_attempt = max(receive_count, claim.attempts) >= self.settings.ingest_max_attempts
        return self._process(ref, claim, data, last_attempt=last_attempt)

    def _read(self, key: str) -> bytes | None:
        head = self.store.head(key)
        if head is None:
            return None
        if head.size > self.settings.max_document_bytes:
            raise DocumentUnreadableError(f"the file is over the {_size(self.settings.max_document_bytes)} limit")
        return self.store.get(key)

    def _process(
        self, ref: DocumentRef, claim: ClaimedDocument, data: bytes | None, *, last_attempt: bool
    ) -> IngestOutcome:
        sha: bytes | None = None
        try:
            if data is None:
                data = self._read(claim.storage_key)
            if data is None:
                raise DocumentUnreadableError(FILE_MISSING)
            sha = hashlib.sha256(data).digest()
            # uploads arrive tagged unattached (the bucket's lifecycle expires those after a day): a
            # document's file is kept for its reprocess and download
            self.store.mark_attached(claim.storage_key)
            limits = ParsingLimits(max_bytes=self.settings.max_document_bytes)
            parsed = parse_document(data, claim.media_type, claim.filename, limits)
            chunks = chunk_document(parsed, _chunking_settings(claim.chunking))
            if not chunks:
                raise DocumentUnreadableError(NO_TEXT)
        except DocumentUnreadableError as exc:
            return self._fail(ref, claim, exc.reason, sha)
        try:
            vectors, cost = asyncio.run(self._embed(claim, chunks))
        except _ClaimLostError:  # stop paying for embeddings nobody will store
            return IngestOutcome(ref, IngestResult.SKIPPED, claim.id, "the document was taken over")
        except OpenRouterError as exc:
            logger.warning(
                "document embedding failed",
                extra={"document_id": str(claim.id), "error_type": type(exc).__name__, "last": last_attempt},
            )
            if last_attempt:
                return self._fail(ref, claim, EMBEDDING_FAILED, sha)
            with self.database.service_transaction() as conn:
                release_for_retry(conn, claim)
            raise RetryLaterError(str(claim.id)) from exc
        rows = [
            ChunkRow(
                text=chunk.text,
                page=chunk.page,
                section=" > ".join(chunk.section) or None,
                tokens=chunk.tokens,
                embedding=vector,
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        with self.database.service_transaction() as conn:
            stored = store_ready(conn, claim, chunks=rows, pages=parsed.pages, content_sha256=sha, cost=cost)
        if not stored:
            return IngestOutcome(ref, IngestResult.SKIPPED, claim.id, "the document was taken over")
        logger.info(
            "document ready",
            extra={"document_id": str(claim.id), "chunks": len(rows), "pages": parsed.pages, "cost": cost.cost},
        )
        announce(claim, DOCUMENT_PROCESSED, {"status": "ready", "chunks": len(rows), "pages": parsed.pages})
        return IngestOutcome(ref, IngestResult.READY, claim.id)

    def _fail(self, ref: DocumentRef, claim: ClaimedDocument, reason: str, sha: bytes | None) -> IngestOutcome:
        with self.database.service_transaction() as conn:
            failed = fail_claimed(conn, claim, reason, content_sha256=sha)
        if not failed:  # deleted, reprocessed or taken over meanwhile: this worker's outcome is no one's
            return IngestOutcome(ref, IngestResult.SKIPPED, claim.id, "the document was taken over")
        logger.info("document failed", extra={"document_id": str(claim.id), "reason": reason})
        announce(claim, DOCUMENT_FAILED, {"status": "failed", "error": reason})
        return IngestOutcome(ref, IngestResult.FAILED, claim.id, reason)

    async def _embed(self, claim: ClaimedDocument, chunks: list[Chunk]) -> tuple[list[list[float]], EmbeddingCost]:
        """The chunks' vectors, batch after batch; the progress is written after each batch in its own
        short transaction (a reader sees it move; nothing is held open while OpenRouter answers)."""
        texts = [chunk.text for chunk in chunks]
        vectors: list[list[float]] = []
        usage = EmbeddingUsage(cost=0.0)
        async with OpenRouterClient(self.settings) as client:
            embeddings = self.embeddings(client)
            model = embeddings.default_model
            batches = plan_batches(texts, max_count=embeddings.batch_size, max_chars=embeddings.batch_chars)
            with self.database.service_transaction() as conn:
                set_progress(conn, claim, chunks_done=0, chunks_total=len(texts))
            for batch in batches:
                result = await embeddings.embed([texts[i] for i in batch], model)
                vectors.extend(result.vectors)
                usage = usage.plus(result.usage)
                with self.database.service_transaction() as conn:
                    if not set_progress(conn, claim, chunks_done=len(vectors), chunks_total=len(texts)):
                        raise _ClaimLostError(str(claim.id))
        return vectors, EmbeddingCost(
            model=model, tokens=usage.total_tokens or usage.prompt_tokens, cost=usage.cost
        )


def announce(claim: ClaimedDocument, detail_type: str, outcome: dict[str, Any]) -> bool:
    """`DocumentProcessed` / `DocumentFailed` (`oneai.knowledge`), best effort, after the commit: the
    outbound webhooks' `document.processed` / `document.failed`."""
    detail = {
        "workspace_id": str(claim.workspace_id),
        "document_id": str(claim.id),
        "filename": claim.filename,
        **outcome,
    }
    try:
        return get_publisher().publish(EVENT_SOURCE, detail_type, detail)
    except Exception as exc:  # the document's state is committed either way
        logger.warning("document event not published", extra={"error_type": type(exc).__name__})
        return False


def sweep_stuck_documents(database: Database, settings: Settings) -> dict[str, int]:
    """Requeue documents whose worker died (while attempts remain), fail the rest and the uploads that
    never completed, and send again the message of a document left `queued` without one (a send SQS
    refused after its commit). The messages are sent after the commit."""
    with database.service_transaction() as conn:
        result = sweep_documents(
            conn,
            stale_seconds=settings.ingest_stale_seconds,
            max_attempts=settings.ingest_max_attempts,
            upload_hours=settings.upload_abandoned_hours,
            queued_seconds=QUEUED_LOST_SECONDS,
            stalled_reason=STALLED,
            upload_reason=UPLOAD_NEVER_COMPLETED,
        )
    enqueue_ingest([*result.requeued, *result.resent_queued])
    summary = {
        "requeued": len(result.requeued),
        "failed_stalled": result.failed_stalled,
        "failed_uploads": result.failed_uploads,
        "resent_queued": len(result.resent_queued),
    }
    logger.info("ingest sweep done", extra=summary)
    return summary
