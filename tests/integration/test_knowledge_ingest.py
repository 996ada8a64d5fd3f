"""The knowledge ingest (issue 24) end to end below the queue: real files (tests/knowledge_files.py) in a
moto S3 bucket, the real migrated PostgreSQL, the fake OpenRouter over a socket for the embeddings, and
the IngestFunction's handler fed SQS records shaped like S3's notifications and like reprocess messages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter, Status
from oneai.attachments.storage import ObjectStore
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.knowledge import ingest_queue
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
    make_csv,
    make_docx,
    make_docx_bomb,
    make_html,
    make_pdf,
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


def test_pdf_becomes_ready_with_its_pages_chunks_and_cost(env: Env) -> None:
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
    assert row["content_sha256"] is not None
    # kept past the lifecycle rule that expires unattached uploads after a day
    tags = env.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert {"Key": "oneai-attached", "Value": "true"} in tags


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
    [outcome] = env.ingestor.ingest_message(s3_body(key), receive_count=1)
    assert outcome.result is IngestResult.SKIPPED
    assert env.document(document_id)["status"] == "processing"


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
            record("m-bad", s3_body(bad_key)),
            record("m-good", s3_body(good_key)),
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

    assert run("s3-object-created") == {"batchItemFailures": []}
    assert (env.document(document_id)["status"], env.document(document_id)["pages"]) == ("ready", 2)
    env.set_status(document_id, "status = 'queued'")
    assert run("reprocess") == {"batchItemFailures": []}
    assert (env.document(document_id)["status"], env.document(document_id)["attempts"]) == ("ready", 2)
    assert run("sweep") == {"requeued": 0, "failed_stalled": 0, "failed_uploads": 0}


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
