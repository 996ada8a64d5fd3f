"""The knowledge ingest (issue 24) end to end below the queue: real files (tests/knowledge_files.py) in a
moto S3 bucket, the real migrated PostgreSQL, the fake OpenRouter over a socket for the embeddings, and
the IngestFunction's handler fed SQS records shaped like S3's notifications and like reprocess messages."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import boto3
import psycopg
import pytest
from moto import mock_aws
from pydantic import SecretStr

from local.fake_openrouter import EMBEDDING_PRICES, FakeOpenRouter, Status
from oneai.attachments.storage import ObjectStore
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.knowledge import ingest_queue
from oneai.knowledge.document_models import Progress
from oneai.knowledge.documents import get_document
from oneai.knowledge.ingest import (
    EMBEDDING_FAILED,
    STALLED,
    UPLOAD_NEVER_COMPLETED,
    DocumentRef,
    Ingestor,
    IngestResult,
    RetryLaterError,
    sweep_stuck_documents,
)
from oneai.knowledge.parsing.pdf import NO_TEXT_LAYER
from oneai.openrouter import OpenRouterClient, OpenRouterEmbeddings
from tests.aws_support import fake_aws_credentials
from tests.conftest import AppUser
from tests.integration.test_openrouter_client import API_KEY, FAST_RETRY
from tests.integration.test_workspaces_rls import team
from tests.knowledge_files import (
    DOCX_MEDIA_TYPE,
    docx_paragraph,
    encrypt_pdf,
    make_csv,
    make_docx,
    make_docx_bomb,
    make_html,
    make_pdf,
    make_pdf_repeating_one_page,
)
from tests.lambda_support import FakeLambdaContext

pytestmark = pytest.mark.timeout(60)

BUCKET = "oneai-ingest-test"
PARAGRAPH = (
    "Refunds are issued within fourteen days of the returned parcel reaching our warehouse in Pune. "
    "The customer receives an email when the refund is sent, and the money reaches the card in five days. "
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@dataclass
class Env:
    db: Database
    settings: Settings
    ingestor: Ingestor
    s3: Any
    workspace_id: UUID
    owner: AppUser

    def upload(
        self, filename: str, media_type: str, data: bytes, *, status: str = "uploading"
    ) -> tuple[UUID, str]:
        """The row the documents route inserts, and the file as the presigned POST stores it."""
        document_id = uuid.uuid4()
        key = f"knowledge/{self.workspace_id}/{document_id}/{filename}"
        with self.db.service_transaction() as conn:
            conn.execute(
                "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key,"
                " status, created_by) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                (document_id, self.workspace_id, filename, media_type, len(data), key, status, self.owner.id),
            )
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=media_type)
        return document_id, key

    def document(self, document_id: UUID) -> dict[str, Any]:
        with self.db.service_transaction() as conn:
            row = conn.execute(
                "select d.*, (select count(*) from public.document_chunks c where c.document_id = d.id) as chunks,"
                " (select count(distinct page) from public.document_chunks c where c.document_id = d.id) as"
                " chunk_pages from public.documents d where d.id = %s",
                (document_id,),
            ).fetchone()
        assert row is not None
        return dict(row)

    def set_status(self, document_id: UUID, sql_set: str) -> None:
        with self.db.service_transaction() as conn:
            conn.execute(f"update public.documents set {sql_set} where id = %s", (document_id,))  # noqa: S608


def landed_body(key: str) -> str:
    """The ingest queue's message for a landed file (what the intake of S3's notice sends)."""
    return json.dumps({"storage_key": key})


def s3_body(key: str) -> str:
    """The body S3 sends the queue for one upload (the key URL-encoded, as S3 does)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Post",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key.replace(" ", "+"), "size": 1}},
                }
            ]
        }
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db: Database, make_user: Any, upstream: FakeOpenRouter) -> Iterator[Env]:
    fake_aws_credentials(monkeypatch)
    upstream.reset()
    owner = make_user()
    workspace_id = team(db, owner)
    with (
        mock_aws(),
        override_settings(
            attachments_bucket=BUCKET,
            openrouter_base_url=upstream.base_url,
            openrouter_api_key=SecretStr(API_KEY),
            ingest_max_attempts=3,
        ) as settings,
    ):
        s3 = boto3.client("s3", region_name="ap-south-1")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})

        def fast_embeddings(client: OpenRouterClient) -> OpenRouterEmbeddings:
            return OpenRouterEmbeddings(client, retry=FAST_RETRY, batch_size=8)

        ingestor = Ingestor(db, ObjectStore(settings), settings, embeddings=fast_embeddings)
        yield Env(db, settings, ingestor, s3, workspace_id, owner)


def test_pdf_becomes_ready_with_its_pages_chunks_and_cost(env: Env, upstream: FakeOpenRouter) -> None:
    pdf = make_pdf([PARAGRAPH * 2, PARAGRAPH, PARAGRAPH * 3])
    document_id, key = env.upload("Refund policy.pdf", "application/pdf", pdf)

    [outcome] = env.ingestor.ingest_message(s3_body(key), receive_count=1)

    assert outcome.result is IngestResult.READY
    row = env.document(document_id)
    assert row["status"] == "ready" and row["error"] is None
    assert row["pages"] == 3 and row["chunk_pages"] == 3  # a PDF chunk never spans two pages
    assert row["chunks"] == row["chunks_total"] == row["chunks_done"] >= 3
    assert row["tokens"] > 0 and row["attempts"] == 1 and row["processing_started_at"] is None
    assert row["embedding_model"] == env.settings.embedding_model and row["embedding_tokens"] > 0
    # the tokens and the cost OpenRouter billed, summed over the batches: the fake's about four
    # characters a token for each text sent, at the model's price per token
    sent = [text for request in upstream.embeddings_requests for text in request.body["input"]]
    assert len(sent) == row["chunks"]
    assert row["embedding_tokens"] == sum(max(1, len(text) // 4) for text in sent)
    price = EMBEDDING_PRICES[env.settings.embedding_model]
    assert price > 0 and row["embedding_cost"] == price * row["embedding_tokens"]
    assert row["content_sha256"] is not None
    # kept past the lifecycle rule that expires unattached uploads after a day
    tags = env.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert {"Key": "oneai-attached", "Value": "true"} in tags


def test_progress_moves_batch_by_batch_while_the_document_is_processed(env: Env) -> None:
    """What the documents route shows during the embedding: `processing` with chunks_done counting up the
    batches done out of chunks_total, then `ready` with every chunk done."""
    document_id, _ = env.upload("long.txt", "text/plain", ("\n\n".join([PARAGRAPH * 6] * 40)).encode())
    seen: list[tuple[str, int, int | None]] = []  # the row as each batch is sent
    shown: list[tuple[str, Progress]] = []  # the route's model, after the first batch

    class Watched(OpenRouterEmbeddings):
        async def embed(self, texts: Any, model: str | None = None) -> Any:
            row = env.document(document_id)
            seen.append((row["status"], row["chunks_done"], row["chunks_total"]))
            if len(seen) == 2:
                with env.db.user_transaction(env.owner.principal) as conn:
                    detail = get_document(conn, document_id)
                shown.append((detail.status, detail.progress))
            return await super().embed(texts, model)

    ingestor = Ingestor(
        env.db,
        env.ingestor.store,
        env.settings,
        embeddings=lambda client: Watched(client, retry=FAST_RETRY, batch_size=8),
    )
    [outcome] = ingestor.ingest_message(json.dumps({"document_id": str(document_id)}), receive_count=1)

    assert outcome.result is IngestResult.READY
    row = env.document(document_id)
    total = row["chunks_total"]
    assert row["status"] == "ready" and row["chunks_done"] == total == row["chunks"] > 16
    assert len(seen) == -(-total // 8)  # one request per batch of 8
    assert seen[0] == ("processing", 0, total)
    assert [done for _, done, _ in seen] == [8 * n for n in range(len(seen))]
    # after the first batch and before the last one's: still processing, partly done
    assert all(status == "processing" and seen_total == total for status, _, seen_total in seen)
    assert all(0 < done < total for _, done, _ in seen[1:])
    assert shown == [("processing", Progress(chunks_done=8, chunks_total=total))]


@pytest.mark.parametrize(
    ("filename", "media_type", "data", "pages"),
    [
        (
            "handbook.docx",
            DOCX_MEDIA_TYPE,
            make_docx(docx_paragraph("Returns", heading=1) + docx_paragraph(PARAGRAPH * 4)),
            None,
        ),
        ("help.html", "text/html", make_html(PARAGRAPH), None),
        ("catalogue.csv", "text/csv", make_csv(400), None),
    ],
)
def test_docx_html_csv_become_ready(
    env: Env, filename: str, media_type: str, data: bytes, pages: int | None
) -> None:
    document_id, key = env.upload(filename, media_type, data)
    env.ingestor.ingest_message(s3_body(key), receive_count=1)
    row = env.document(document_id)
    assert row["status"] == "ready", row["error"]
    assert row["pages"] == pages
    assert row["chunks"] == row["chunks_total"] >= 1
    if filename.endswith(".csv"):  # 400 rows do not fit one chunk of 500 tokens
        assert row["chunks"] > 1


def test_workspace_chunking_settings_are_used(env: Env) -> None:
    data = make_docx(docx_paragraph(PARAGRAPH * 20))
    first, first_key = env.upload("a.docx", DOCX_MEDIA_TYPE, data)
    env.ingestor.ingest_message(s3_body(first_key), receive_count=1)
    with env.db.service_transaction() as conn:
        conn.execute(
            "update public.workspaces set settings = %s where id = %s",
            (json.dumps({"chunking": {"target_tokens": 100, "overlap_tokens": 10}}), env.workspace_id),
        )
    second, second_key = env.upload("b.docx", DOCX_MEDIA_TYPE, data)
    env.ingestor.ingest_message(s3_body(second_key), receive_count=1)
    assert env.document(second)["chunks"] > 3 * env.document(first)["chunks"]


@pytest.mark.parametrize(
    ("filename", "media_type", "data", "reason"),
    [
        ("scan.pdf", "application/pdf", make_pdf([None, None]), NO_TEXT_LAYER),
        ("empty.txt", "text/plain", b"", "the file is empty"),
        ("report.pdf", "application/pdf", make_html(PARAGRAPH), None),
        ("bomb.docx", DOCX_MEDIA_TYPE, make_docx_bomb(200 * 1024 * 1024), None),
    ],
)
def test_unreadable_files_fail_at_once_with_their_reason(
    env: Env, filename: str, media_type: str, data: bytes, reason: str | None
) -> None:
    document_id, key = env.upload(filename, media_type, data)
    [outcome] = env.ingestor.ingest_message(s3_body(key), receive_count=1)  # no RetryLaterError: not retried
    row = env.document(document_id)
    assert outcome.result is IngestResult.FAILED and row["status"] == "failed"
    assert row["error"] and (reason is None or row["error"] == reason)
    assert row["chunks"] == 0 and row["attempts"] == 1


def test_file_over_the_limit_fails_without_being_read(env: Env) -> None:
    with override_settings(max_document_bytes=1024) as settings:
        ingestor = Ingestor(env.db, ObjectStore(settings), settings)
        document_id, key = env.upload("big.txt", "text/plain", b"word " * 1000)
        ingestor.ingest_message(s3_body(key), receive_count=1)
    row = env.document(document_id)
    assert (row["status"], row["error"]) == ("failed", "the file is over the 1,024 bytes limit")


def test_embedding_failure_is_retried_then_fails_on_the_last_delivery(env: Env, upstream: FakeOpenRouter) -> None:
    document_id, key = env.upload("notes.txt", "text/plain", PARAGRAPH.encode())
    body = s3_body(key)
    for delivery in (1, 2):
        upstream.script_embeddings(*[Status(500)] * 3)  # the request and its two fast retries
        with pytest.raises(RetryLaterError):
            env.ingestor.ingest_message(body, receive_count=delivery)
        row = env.document(document_id)
        assert (row["status"], row["attempts"], row["error"]) == ("queued", delivery, None)
    upstream.script_embeddings(*[Status(500)] * 3)
    [outcome] = env.ingestor.ingest_message(body, receive_count=3)
    row = env.document(document_id)
    assert outcome.result is IngestResult.FAILED
    assert (row["status"], row["error"], row["attempts"]) == ("failed", EMBEDDING_FAILED, 3)


def test_retry_after_an_embedding_failure_succeeds(env: Env, upstream: FakeOpenRouter) -> None:
    document_id, key = env.upload("notes.txt", "text/plain", PARAGRAPH.encode())
    upstream.script_embeddings(*[Status(503)] * 3)
    with pytest.raises(RetryLaterError):
        env.ingestor.ingest_message(s3_body(key), receive_count=1)
    env.ingestor.ingest_message(s3_body(key), receive_count=2)
    assert env.document(document_id)["status"] == "ready"


def test_duplicate_delivery_is_processed_once(env: Env, upstream: FakeOpenRouter) -> None:
    document_id, key = env.upload("guide.html", "text/html", make_html(PARAGRAPH))
    body = s3_body(key)
    env.ingestor.ingest_message(body, receive_count=1)
    requests = len(upstream.requests)
    [again] = env.ingestor.ingest_message(body, receive_count=1)
    assert again.result is IngestResult.SKIPPED
    assert len(upstream.requests) == requests  # nothing embedded twice
    row = env.document(document_id)
    assert (row["status"], row["attempts"]) == ("ready", 1)


def test_live_claim_is_not_taken_by_a_second_delivery(env: Env) -> None:
    document_id, key = env.upload("a.txt", "text/plain", PARAGRAPH.encode())
    env.set_status(document_id, "status = 'processing', attempts = 1, processing_started_at = now()")
    # the notification stays on the queue (its file may have replaced the one being processed) ...
    with pytest.raises(RetryLaterError):
        env.ingestor.ingest_message(s3_body(key), receive_count=1)
    # ... but not past its last delivery (the dead-letter queue is for what could not even be marked)
    [last] = env.ingestor.ingest_message(s3_body(key), receive_count=env.settings.ingest_max_attempts)
    [by_id] = env.ingestor.ingest_message(json.dumps({"document_id": str(document_id)}), receive_count=1)
    assert last.result is by_id.result is IngestResult.SKIPPED
    row = env.document(document_id)
    assert (row["status"], row["attempts"]) == ("processing", 1)


def test_reprocess_replaces_the_chunks(env: Env) -> None:
    document_id, key = env.upload("a.csv", "text/csv", make_csv(300))
    env.ingestor.ingest_message(s3_body(key), receive_count=1)
    before = env.document(document_id)["chunks"]
    env.set_status(document_id, "status = 'queued'")  # what the reprocess route does
    env.ingestor.ingest_message(json.dumps({"document_id": str(document_id)}), receive_count=1)
    row = env.document(document_id)
    assert row["status"] == "ready" and row["chunks"] == before and row["attempts"] == 2


def test_new_file_under_a_processed_key_is_processed(env: Env) -> None:
    document_id, key = env.upload("a.txt", "text/plain", PARAGRAPH.encode())
    env.ingestor.ingest_message(s3_body(key), receive_count=1)
    env.s3.put_object(Bucket=BUCKET, Key=key, Body=(PARAGRAPH * 30).encode(), ContentType="text/plain")
    [outcome] = env.ingestor.ingest_message(s3_body(key), receive_count=1)
    assert outcome.result is IngestResult.READY
    assert env.document(document_id)["chunks"] > 1


def test_crash_midway_is_requeued_by_the_sweep_then_failed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies after its claim leaves `processing`; past the stale time the sweep requeues it
    (and sends its message) while attempts remain, and fails it after the last."""
    sent: list[dict[str, str]] = []
    ingest_queue.set_local_ingest_sink(sent.append)
    try:
        document_id, _ = env.upload("a.txt", "text/plain", PARAGRAPH.encode())

        def crash(*args: Any, **kwargs: Any) -> Any:
            raise SystemExit("the worker died")

        for attempt in (1, 2, 3):
            with monkeypatch.context() as patch:
                patch.setattr("oneai.knowledge.ingest.parse_document", crash)
                with pytest.raises(SystemExit):
                    env.ingestor.ingest(DocumentRef(document_id=document_id), receive_count=1)
            assert env.document(document_id)["status"] == "processing"
            assert sweep_stuck_documents(env.db, env.settings)["requeued"] == 0  # not stale yet
            env.set_status(document_id, "processing_started_at = now() - interval '1 hour'")
            report = sweep_stuck_documents(env.db, env.settings)
            row = env.document(document_id)
            if attempt < 3:
                assert report["requeued"] == 1 and row["status"] == "queued"
                assert sent[-1] == {"document_id": str(document_id)}
            else:
                assert report["failed_stalled"] == 1
                assert (row["status"], row["error"]) == ("failed", STALLED)
        assert len(sent) == 2
    finally:
        ingest_queue.set_local_ingest_sink(None)


def test_stale_claim_is_taken_over_by_the_next_delivery(env: Env) -> None:
    document_id, key = env.upload("a.txt", "text/plain", PARAGRAPH.encode())
    env.set_status(
        document_id, "status = 'processing', attempts = 1, processing_started_at = now() - interval '1 hour'"
    )
    env.ingestor.ingest_message(s3_body(key), receive_count=2)
    row = env.document(document_id)
    assert (row["status"], row["attempts"]) == ("ready", 2)


def test_sweep_fails_uploads_that_never_completed(env: Env) -> None:
    old, _ = env.upload("old.txt", "text/plain", b"x")
    fresh, _ = env.upload("fresh.txt", "text/plain", b"x")
    env.set_status(old, "created_at = now() - interval '25 hours'")
    report = sweep_stuck_documents(env.db, env.settings)
    assert report["failed_uploads"] == 1
    assert (env.document(old)["status"], env.document(old)["error"]) == ("failed", UPLOAD_NEVER_COMPLETED)
    assert env.document(fresh)["status"] == "uploading"


def test_handler_reports_only_the_failed_records(env: Env, upstream: FakeOpenRouter) -> None:
    from ingest.handler import lambda_handler  # functions/ingest on the path like the other functions

    good, good_key = env.upload("good.txt", "text/plain", PARAGRAPH.encode())
    bad, bad_key = env.upload("bad.txt", "text/plain", (PARAGRAPH + " other").encode())
    upstream.script_embeddings(Status(400))  # the first record's embedding fails (400: no client retry)

    def record(message_id: str, body: str) -> dict[str, Any]:
        return {"messageId": message_id, "body": body, "attributes": {"ApproximateReceiveCount": "1"}}

    event = {
        "Records": [
            record("m-bad", landed_body(bad_key)),
            record("m-good", landed_body(good_key)),
            record("m-junk", "not json"),
            record("m-test", json.dumps({"Event": "s3:TestEvent"})),
        ]
    }
    answer = lambda_handler(event, FakeLambdaContext("IngestFunction"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert env.document(good)["status"] == "ready"
    assert env.document(bad)["status"] == "queued"


def test_sample_events_run_through_the_handler(env: Env) -> None:
    """events/ingest/*.json (for `sam local invoke IngestFunction -e`) do what they say."""
    from ingest.handler import lambda_handler

    from local.events import EVENTS_DIR, INGEST_SAMPLE_DOCUMENT, INGEST_SAMPLE_WORKSPACE

    with env.db.service_transaction() as conn:
        conn.execute(
            "insert into public.workspaces (id, name, slug, owner_id) values (%s, 'Samples', %s, %s)"
            " on conflict (id) do nothing",
            (INGEST_SAMPLE_WORKSPACE, f"samples-{uuid.uuid4().hex[:8]}", env.owner.id),
        )
        conn.execute("delete from public.documents where id = %s", (INGEST_SAMPLE_DOCUMENT,))
    env.workspace_id = UUID(INGEST_SAMPLE_WORKSPACE)
    pdf = make_pdf([PARAGRAPH, PARAGRAPH])
    document_id = UUID(INGEST_SAMPLE_DOCUMENT)
    key = f"knowledge/{INGEST_SAMPLE_WORKSPACE}/{document_id}/Refund policy.pdf"
    with env.db.service_transaction() as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key)"
            " values (%s, %s, 'Refund policy.pdf', 'application/pdf', %s, %s)",
            (document_id, env.workspace_id, len(pdf), key),
        )
    env.s3.put_object(Bucket=BUCKET, Key=key, Body=pdf, ContentType="application/pdf")

    def run(name: str) -> dict[str, Any]:
        event = json.loads((EVENTS_DIR / "ingest" / f"{name}.json").read_text())
        answer: dict[str, Any] = lambda_handler(event, FakeLambdaContext("IngestFunction"))
        return answer

    assert run("landed") == {"batchItemFailures": []}  # (s3-object-created: test_knowledge_intake.py)
    assert (env.document(document_id)["status"], env.document(document_id)["pages"]) == ("ready", 2)
    env.set_status(document_id, "status = 'queued'")
    assert run("reprocess") == {"batchItemFailures": []}
    assert (env.document(document_id)["status"], env.document(document_id)["attempts"]) == ("ready", 2)
    assert run("sweep") == {"requeued": 0, "failed_stalled": 0, "failed_uploads": 0, "resent_queued": 0}


def test_worker_whose_claim_was_taken_over_stops_embedding(env: Env, upstream: FakeOpenRouter) -> None:
    """A worker presumed dead (its claim taken over by another delivery) stops after the batch in flight:
    it neither pays for the rest of the embeddings nor writes anything."""
    document_id, key = env.upload("long.txt", "text/plain", ("\n\n".join([PARAGRAPH * 6] * 40)).encode())

    class TakenOverDuringTheFirstBatch(OpenRouterEmbeddings):
        async def embed(self, texts: Any, model: str | None = None) -> Any:
            result = await super().embed(texts, model)
            env.set_status(document_id, "attempts = attempts + 1")  # the other worker's claim
            return result

    ingestor = Ingestor(
        env.db,
        env.ingestor.store,
        env.settings,
        embeddings=lambda client: TakenOverDuringTheFirstBatch(client, retry=FAST_RETRY, batch_size=8),
    )
    before = len(upstream.requests)
    [outcome] = ingestor.ingest_message(s3_body(key), receive_count=1)
    assert outcome.result is IngestResult.SKIPPED
    assert len(upstream.requests) - before == 1  # of the document's several batches
    row = env.document(document_id)
    assert row["status"] == "processing" and row["chunks"] == 0 and row["chunks_total"] > 8


# --- issue 24's bad inputs, through the function's handler: each ends `failed` with its reason (or
# `ready` when the text can be read), and the worker reports no failure (nothing retried, nothing stuck)


def handle(key: str, receive_count: int = 1) -> dict[str, Any]:
    """The handler fed the landed file's message from the ingest queue."""
    from ingest.handler import lambda_handler

    event = {
        "Records": [
            {
                "messageId": "m-1",
                "body": landed_body(key),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
            }
        ]
    }
    answer: dict[str, Any] = lambda_handler(event, FakeLambdaContext("IngestFunction"))
    return answer


@pytest.mark.parametrize(
    ("filename", "media_type", "data", "reason"),
    [
        (
            "secret.pdf",
            "application/pdf",
            encrypt_pdf(make_pdf([PARAGRAPH]), user_password="letmein", owner_password="boss"),
            "the file is encrypted: remove its password and upload it again",
        ),
        (
            "million.pdf",
            "application/pdf",
            make_pdf_repeating_one_page(1_000_000),
            "the PDF is too large or complex to read",
        ),
        (
            "giant.csv",
            "text/csv",
            b"id,notes\n1," + b"ab," * (6 * 1024 * 1024) + b"\n",
            "line 2 of the CSV is longer than 131,072 characters",
        ),
        (
            "report.pdf",
            "application/pdf",
            make_docx(docx_paragraph(PARAGRAPH)),
            "the file is not a valid PDF: it is a ZIP",
        ),
        ("notes.txt", "text/plain", make_pdf([PARAGRAPH]), "the file is a PDF, not a text file"),
        ("empty.csv", "text/csv", b"", "the file is empty"),
        ("bomb.docx", DOCX_MEDIA_TYPE, make_docx_bomb(200 * 1024 * 1024), None),
        ("nul.docx", DOCX_MEDIA_TYPE, make_docx(docx_paragraph("Nul\x00l")), "the file is not a valid DOCX"),
    ],
    ids=[
        "encrypted-pdf",
        "million-pages",
        "csv-giant-line",
        "docx-as-pdf",
        "pdf-as-txt",
        "empty",
        "zip-bomb",
        "nul-docx",
    ],
)
def test_bad_inputs_end_failed_with_their_reason_and_the_worker_does_not_fail(
    env: Env, filename: str, media_type: str, data: bytes, reason: str | None
) -> None:
    document_id, key = env.upload(filename, media_type, data)

    assert handle(key) == {"batchItemFailures": []}

    row = env.document(document_id)
    assert row["status"] == "failed" and row["chunks"] == 0 and row["processing_started_at"] is None
    assert row["error"] and (reason is None or row["error"].startswith(reason)), row["error"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café “quoted” — 5 € refunds. ".encode("cp1252") * 20, "Café “quoted” — 5 € refunds."),
        (b"Hello\x00 world, refunds take five days. " * 20, "Hello world, refunds take five days."),
    ],
    ids=["invalid-utf8", "nul-bytes"],
)
def test_invalid_utf8_and_nul_bytes_are_read(env: Env, data: bytes, expected: str) -> None:
    document_id, key = env.upload("legacy.txt", "text/plain", data)

    assert handle(key) == {"batchItemFailures": []}

    assert env.document(document_id)["status"] == "ready"
    with env.db.service_transaction() as conn:
        texts = [
            r["text"]
            for r in conn.execute("select text from public.document_chunks where document_id = %s", (document_id,))
        ]
    assert texts and all("\x00" not in t for t in texts) and expected in texts[0]


# --- lifecycle races


def test_a_document_deleted_while_its_ingest_runs_gets_no_chunks_and_the_worker_stops(
    env: Env, upstream: FakeOpenRouter
) -> None:
    document_id, key = env.upload("long.txt", "text/plain", ("\n\n".join([PARAGRAPH * 6] * 40)).encode())

    class DeletedDuringTheFirstBatch(OpenRouterEmbeddings):
        async def embed(self, texts: Any, model: str | None = None) -> Any:
            result = await super().embed(texts, model)
            with env.db.service_transaction() as conn:  # the delete route, then its S3 delete after the commit
                conn.execute("delete from public.documents where id = %s", (document_id,))
            env.s3.delete_object(Bucket=BUCKET, Key=key)
            return result

    ingestor = Ingestor(
        env.db,
        env.ingestor.store,
        env.settings,
        embeddings=lambda client: DeletedDuringTheFirstBatch(client, retry=FAST_RETRY, batch_size=8),
    )
    before = len(upstream.requests)
    [outcome] = ingestor.ingest_message(s3_body(key), receive_count=1)

    assert outcome.result is IngestResult.SKIPPED
    assert len(upstream.requests) - before == 1  # stopped paying after the batch in flight
    with env.db.service_transaction() as conn:
        assert (
            conn.execute("select count(*) as n from public.documents where id = %s", (document_id,)).fetchone()[
                "n"
            ]
            == 0
        )
        chunks = conn.execute(
            "select count(*) as n from public.document_chunks where document_id = %s", (document_id,)
        )
        assert chunks.fetchone()["n"] == 0
    assert "Contents" not in env.s3.list_objects_v2(
        Bucket=BUCKET, Prefix=f"knowledge/{env.workspace_id}/{document_id}/"
    )
    # a second delivery of the same event finds nothing to do
    assert ingestor.ingest_message(s3_body(key), receive_count=2)[0].result is IngestResult.SKIPPED


def test_a_file_that_lands_after_its_document_was_deleted_is_not_left_behind(env: Env) -> None:
    """The upload is still in flight when the user deletes the document (the presigned POST stays valid):
    the file arrives under a key no document has any more, and nothing else would ever delete it."""
    document_id, key = env.upload("late.txt", "text/plain", PARAGRAPH.encode())
    with env.db.service_transaction() as conn:
        conn.execute("delete from public.documents where id = %s", (document_id,))

    assert handle(key) == {"batchItemFailures": []}

    assert "Contents" not in env.s3.list_objects_v2(
        Bucket=BUCKET, Prefix=f"knowledge/{env.workspace_id}/{document_id}/"
    )


def test_a_late_file_s3_refuses_to_delete_fails_no_record(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    document_id, key = env.upload("late.txt", "text/plain", PARAGRAPH.encode())
    with env.db.service_transaction() as conn:
        conn.execute("delete from public.documents where id = %s", (document_id,))

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("S3 is down")

    monkeypatch.setattr(ObjectStore, "delete", refused)
    assert handle(key) == {"batchItemFailures": []}  # nothing retried to the dead-letter queue for it


def test_the_sweep_takes_a_slow_worker_s_document_over_and_the_slow_worker_writes_nothing(
    env: Env, upstream: FakeOpenRouter
) -> None:
    sent: list[dict[str, str]] = []
    ingest_queue.set_local_ingest_sink(sent.append)
    try:
        document_id, key = env.upload("long.txt", "text/plain", ("\n\n".join([PARAGRAPH * 6] * 40)).encode())

        class SweptDuringTheFirstBatch(OpenRouterEmbeddings):
            async def embed(self, texts: Any, model: str | None = None) -> Any:
                result = await super().embed(texts, model)
                if not sent:  # the worker is slow: past the stale time the sweep runs
                    env.set_status(document_id, "processing_started_at = now() - interval '1 hour'")
                    assert sweep_stuck_documents(env.db, env.settings)["requeued"] >= 1
                return result

        slow = Ingestor(
            env.db,
            env.ingestor.store,
            env.settings,
            embeddings=lambda client: SweptDuringTheFirstBatch(client, retry=FAST_RETRY, batch_size=8),
        )
        [outcome] = slow.ingest_message(s3_body(key), receive_count=1)
        assert outcome.result is IngestResult.SKIPPED
        row = env.document(document_id)
        assert (row["status"], row["chunks"]) == ("queued", 0)

        message = {"document_id": str(document_id)}
        assert message in sent
        [requeued] = env.ingestor.ingest_message(json.dumps(message), receive_count=1)
        assert requeued.result is IngestResult.READY
        row = env.document(document_id)
        assert (row["status"], row["attempts"]) == ("ready", 2) and row["chunks"] == row["chunks_total"]
    finally:
        ingest_queue.set_local_ingest_sink(None)


def test_a_message_that_fails_every_delivery_leaves_the_document_failed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every delivery dies with an unexpected error (here S3 reads fail) after its claim: SQS retries it,
    sends it to the dead-letter queue after the last, and the sweep fails the document."""
    document_id, key = env.upload("a.txt", "text/plain", PARAGRAPH.encode())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("S3 is down")

    monkeypatch.setattr(ObjectStore, "get", broken)
    for delivery in (1, 2, 3):
        assert handle(key, receive_count=delivery) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
        assert env.document(document_id)["status"] == "processing"
        env.set_status(document_id, "processing_started_at = now() - interval '1 hour'")  # the visibility timeout
    # the message is in the dead-letter queue now; the sweep ends the document
    report = sweep_stuck_documents(env.db, env.settings)
    assert report["failed_stalled"] == 1
    row = env.document(document_id)
    assert (row["status"], row["error"], row["attempts"]) == ("failed", STALLED, 3)


def test_a_document_left_queued_without_a_message_is_sent_again_by_the_sweep(env: Env, database_url: str) -> None:
    """The sweep (or a reprocess) commits `queued` and then SQS refuses the message: nothing would ever
    claim the document (the sweep only looked at `processing` and `uploading`), so it stayed queued."""
    from oneai.errors import UnavailableError

    sent: list[dict[str, str]] = []

    def refused(message: dict[str, str]) -> None:
        raise UnavailableError("The processing queue is unavailable; reprocess the document later")

    document_id, _ = env.upload("a.txt", "text/plain", PARAGRAPH.encode())
    env.set_status(
        document_id, "status = 'processing', attempts = 1, processing_started_at = now() - interval '1 hour'"
    )
    ingest_queue.set_local_ingest_sink(refused)
    try:
        with pytest.raises(UnavailableError):
            sweep_stuck_documents(env.db, env.settings)
        assert env.document(document_id)["status"] == "queued"
        ingest_queue.set_local_ingest_sink(sent.append)
        mine = {"document_id": str(document_id)}
        sweep_stuck_documents(env.db, env.settings)
        assert mine not in sent  # a message may still be on its way

        with psycopg.connect(database_url, autocommit=True) as conn:  # hours pass (past the trigger)
            conn.execute("set session_replication_role = replica")
            conn.execute(
                "update public.documents set updated_at = now() - interval '3 hours' where id = %s", (document_id,)
            )
        report = sweep_stuck_documents(env.db, env.settings)
        assert sent.count(mine) == 1
        assert report["resent_queued"] >= 1
        sweep_stuck_documents(env.db, env.settings)
        assert sent.count(mine) == 1  # once, not every run

        [outcome] = env.ingestor.ingest_message(json.dumps(mine), receive_count=1)
        assert outcome.result is IngestResult.READY and env.document(document_id)["status"] == "ready"
    finally:
        ingest_queue.set_local_ingest_sink(None)


def test_a_worker_presumed_dead_cannot_write_over_the_claim_after_a_reprocess(env: Env) -> None:
    """The reprocess sets attempts back to 0, so the next claim gets the same attempts number as the
    worker presumed dead had: that worker, waking up, must still write nothing over the new one's."""
    from oneai.db import documents as documents_repo
    from oneai.db.knowledge_ingest import claim_document, fail_claimed

    document_id, _ = env.upload("a.txt", "text/plain", PARAGRAPH.encode())
    with env.db.service_transaction() as conn:
        slow = claim_document(conn, document_id, stale_seconds=env.settings.ingest_stale_seconds)
    assert slow is not None and slow.attempts == 1
    with override_settings(ingest_stale_seconds=1) as settings:  # the worker is slow: past the stale time
        time.sleep(1.1)
        sweep_stuck_documents(env.db, settings)
    assert env.document(document_id)["status"] == "queued"
    with env.db.service_transaction() as conn:  # the user reprocesses it (the route's statement)
        assert documents_repo.requeue(conn, env.workspace_id, [document_id], failed_only=False) == [document_id]
        fresh = claim_document(conn, document_id, stale_seconds=env.settings.ingest_stale_seconds)
    assert fresh is not None and fresh.attempts == slow.attempts

    with env.db.service_transaction() as conn:  # the slow worker's embeddings failed on its last delivery
        assert not fail_claimed(conn, slow, EMBEDDING_FAILED, content_sha256=None)
    assert env.document(document_id)["status"] == "processing"

    outcome = env.ingestor._process(DocumentRef(document_id=document_id), fresh, None, last_attempt=False)
    assert outcome.result is IngestResult.READY
    row = env.document(document_id)
    assert (row["status"], row["error"]) == ("ready", None) and row["chunks"] >= 1


def test_a_file_replaced_while_its_document_is_processed_is_processed_too(env: Env) -> None:
    """The presigned POST stays valid for its whole window, so a second upload can land under the key while
    a worker processes the first file: its notification must not be dropped (the document would keep the
    first file's chunks for good, its download serving the second)."""
    first = "\n\n".join([PARAGRAPH * 6] * 40).encode()
    second = b"Shipping to Sri Lanka takes nine days and costs four hundred rupees."
    document_id, key = env.upload("policy.txt", "text/plain", first)
    during: list[Any] = []

    class ReplacedDuringTheFirstBatch(OpenRouterEmbeddings):
        async def embed(self, texts: Any, model: str | None = None) -> Any:
            if not during:  # the second upload lands and S3 notifies while this worker holds the document
                env.s3.put_object(Bucket=BUCKET, Key=key, Body=second, ContentType="text/plain")
                try:
                    during.append(env.ingestor.ingest_message(s3_body(key), receive_count=1))
                except RetryLaterError as exc:
                    during.append(exc)
            return await super().embed(texts, model)

    worker = Ingestor(
        env.db,
        env.ingestor.store,
        env.settings,
        embeddings=lambda client: ReplacedDuringTheFirstBatch(client, retry=FAST_RETRY, batch_size=8),
    )
    [outcome] = worker.ingest_message(s3_body(key), receive_count=1)
    assert outcome.result is IngestResult.READY  # the first file, read before the second landed
    assert isinstance(during[0], RetryLaterError)  # the second notification stays on the queue

    [again] = env.ingestor.ingest_message(s3_body(key), receive_count=2)  # after the visibility timeout
    assert again.result is IngestResult.READY
    with env.db.service_transaction() as conn:
        texts = [
            r["text"]
            for r in conn.execute("select text from public.document_chunks where document_id = %s", (document_id,))
        ]
    assert texts == [second.decode()]


def test_two_deliveries_of_one_notification_at_once_process_the_file_once(
    env: Env, upstream: FakeOpenRouter
) -> None:
    import threading

    document_id, key = env.upload("guide.html", "text/html", make_html(PARAGRAPH * 8))
    start = threading.Barrier(2)
    results: list[Any] = []

    def deliver() -> None:
        start.wait()
        try:
            results.append(env.ingestor.ingest_message(s3_body(key), receive_count=1)[0].result)
        except RetryLaterError as exc:  # the other one held it: back after the visibility timeout
            results.append(exc)

    before = len(upstream.requests)
    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert IngestResult.READY in results and len(results) == 2
    embedded = len(upstream.requests) - before
    if any(isinstance(r, RetryLaterError) for r in results):  # its redelivery finds the same file done
        assert env.ingestor.ingest_message(s3_body(key), receive_count=2)[0].result is IngestResult.SKIPPED
    assert len(upstream.requests) - before == embedded == 1
    row = env.document(document_id)
    assert (row["status"], row["attempts"]) == ("ready", 1) and row["chunks"] == row["chunks_total"]


def test_a_worker_that_lost_its_document_announces_no_outcome(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The document was deleted (or taken over) while its worker parsed the file, which turned out
    unreadable: the worker's failure writes nothing, so no `document.failed` webhook may go out for it."""
    from oneai import events
    from oneai.knowledge import ingest as ingest_module

    published: list[Any] = []
    events.set_local_sink(published.append)
    try:
        document_id, key = env.upload("empty.txt", "text/plain", b"")
        real_parse = ingest_module.parse_document

        def deleted_while_parsing(*args: Any, **kwargs: Any) -> Any:
            with env.db.service_transaction() as conn:
                conn.execute("delete from public.documents where id = %s", (document_id,))
            return real_parse(*args, **kwargs)

        monkeypatch.setattr(ingest_module, "parse_document", deleted_while_parsing)
        [outcome] = env.ingestor.ingest_message(s3_body(key), receive_count=1)

        assert [e for e in published if e.detail.get("document_id") == str(document_id)] == []
        assert outcome.result is IngestResult.SKIPPED
    finally:
        events.set_local_sink(None)
