"""A document reads `queued` from the moment its file lands until a worker takes it (issue 24 item 6:
`uploading` -> `queued` -> `processing` -> `ready`). S3's notice reaches the IngestFunction's handler from
the document uploads queue; it marks the document and passes the file on to the ingest queue as
`{"storage_key"}`, which the same handler, fed from the ingest queue, processes. Real PostgreSQL, moto's
S3 and SQS, the fake OpenRouter's embeddings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import boto3
import pytest

from local.fake_openrouter import FakeOpenRouter
from oneai.config import override_settings
from oneai.knowledge import ingest_queue
from tests.integration.test_knowledge_ingest import BUCKET, PARAGRAPH, Env, env, s3_body, upstream
from tests.knowledge_files import make_pdf
from tests.lambda_support import FakeLambdaContext

__all__ = ["env", "upstream"]  # the fixtures this module uses from the ingest's tests

pytestmark = pytest.mark.timeout(60)

UPLOADS_QUEUE_ARN = "arn:aws:sqs:ap-south-1:123456789012:oneai-document-uploads"


def notices(*keys: str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch of the uploads queue: one S3 notice a file, as S3 sends it."""
    return {
        "Records": [
            {
                "messageId": f"notice-{n}",
                "body": s3_body(key),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSource": "aws:sqs",
                "eventSourceARN": UPLOADS_QUEUE_ARN,
            }
            for n, key in enumerate(keys)
        ]
    }


def ingest_batch(messages: list[dict[str, str]]) -> dict[str, Any]:
    """An SQS batch of the ingest queue holding these messages."""
    return {
        "Records": [
            {"messageId": f"ingest-{n}", "body": json.dumps(m), "attributes": {"ApproximateReceiveCount": "1"}}
            for n, m in enumerate(messages)
        ]
    }


@pytest.fixture
def sent() -> Iterator[list[dict[str, str]]]:
    """What the handler sends the ingest queue (its local sink, as under `make dev`)."""
    messages: list[dict[str, str]] = []
    ingest_queue.set_local_ingest_sink(messages.append)
    try:
        yield messages
    finally:
        ingest_queue.set_local_ingest_sink(None)


def handle(event: dict[str, Any]) -> dict[str, Any]:
    from ingest.handler import lambda_handler  # functions/ingest on the path like the other functions

    answer: dict[str, Any] = lambda_handler(event, FakeLambdaContext("IngestFunction"))
    return answer


def test_a_landed_file_reads_queued_until_a_worker_takes_it_then_ready(
    env: Env, sent: list[dict[str, str]]
) -> None:
    # GIVEN two documents whose files landed (a bulk upload), and one still uploading
    first, first_key = env.upload("refunds.pdf", "application/pdf", make_pdf([PARAGRAPH, PARAGRAPH]))
    second, second_key = env.upload("notes.txt", "text/plain", PARAGRAPH.encode())
    waiting, _ = env.upload("later.txt", "text/plain", PARAGRAPH.encode())
    # WHEN their notices arrive from the uploads queue
    assert handle(notices(first_key, second_key)) == {"batchItemFailures": []}
    # THEN both read `queued` (no longer `uploading`), the other is still uploading, and nothing is
    # processed yet: each file is passed on to the ingest queue
    assert [env.document(d)["status"] for d in (first, second, waiting)] == ["queued", "queued", "uploading"]
    assert env.document(first)["attempts"] == 0
    assert sent == [{"storage_key": first_key}, {"storage_key": second_key}]
    # WHEN a worker takes them from the ingest queue
    assert handle(ingest_batch(sent)) == {"batchItemFailures": []}
    # THEN they are processed as from the notice itself
    done = env.document(first)
    assert (done["status"], done["pages"], done["chunks"] > 0) == ("ready", 2, True)
    assert env.document(second)["status"] == "ready"


def test_a_notice_for_a_document_past_uploading_leaves_its_status_and_passes_the_file_on(
    env: Env, sent: list[dict[str, str]]
) -> None:
    # GIVEN a document a worker already holds, and one already processed (a second upload to its key)
    held, held_key = env.upload("held.txt", "text/plain", PARAGRAPH.encode(), status="processing")
    done, done_key = env.upload("done.txt", "text/plain", PARAGRAPH.encode(), status="ready")
    # WHEN their notices arrive
    assert handle(notices(held_key, done_key)) == {"batchItemFailures": []}
    # THEN neither goes back to `queued`; the ingest decides about the files (by their hash)
    assert (env.document(held)["status"], env.document(done)["status"]) == ("processing", "ready")
    assert sent == [{"storage_key": held_key}, {"storage_key": done_key}]


def test_a_notice_that_cannot_be_passed_on_is_retried_and_its_document_reads_queued(env: Env) -> None:
    # GIVEN an ingest queue SQS refuses (it does not exist yet)
    document, key = env.upload("refunds.txt", "text/plain", PARAGRAPH.encode())
    sqs = boto3.client("sqs", region_name="ap-south-1")
    missing = "https://sqs.ap-south-1.amazonaws.com/123456789012/oneai-ingest-missing"
    with override_settings(ingest_queue_url=missing):
        # WHEN the notice arrives
        answer = handle(notices(key))
    # THEN the notice is retried (it comes back after the visibility timeout) and the file waits `queued`
    assert answer == {"batchItemFailures": [{"itemIdentifier": "notice-0"}]}
    assert env.document(document)["status"] == "queued"
    # WHEN it comes back and the queue takes it
    queue_url = sqs.create_queue(QueueName="oneai-ingest-intake")["QueueUrl"]
    with override_settings(ingest_queue_url=queue_url):
        assert handle(notices(key, receive_count=2)) == {"batchItemFailures": []}
    # THEN the file's message is on the ingest queue, once
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in received] == [{"storage_key": key}]
    assert env.document(document)["status"] == "queued"


def test_a_landed_message_for_a_key_outside_the_knowledge_files_is_dropped(env: Env) -> None:
    answer = handle(ingest_batch([{"storage_key": "attachments/someone/else.png"}]))
    assert answer == {"batchItemFailures": []}  # malformed: logged and dropped, never retried


def test_the_upload_notice_sample_event_marks_its_document_and_passes_the_file_on(
    env: Env, sent: list[dict[str, str]], upstream: FakeOpenRouter
) -> None:
    """events/ingest/s3-object-created.json then landed.json (for `sam local invoke IngestFunction -e`)."""
    from local.events import EVENTS_DIR, INGEST_SAMPLE_DOCUMENT, INGEST_SAMPLE_WORKSPACE

    with env.db.service_transaction() as conn:
        conn.execute(
            "insert into public.workspaces (id, name, slug, owner_id) values (%s, 'Samples', %s, %s)"
            " on conflict (id) do nothing",
            (INGEST_SAMPLE_WORKSPACE, f"samples-{INGEST_SAMPLE_DOCUMENT[:8]}-intake", env.owner.id),
        )
        conn.execute("delete from public.documents where id = %s", (INGEST_SAMPLE_DOCUMENT,))
    key = f"knowledge/{INGEST_SAMPLE_WORKSPACE}/{INGEST_SAMPLE_DOCUMENT}/Refund policy.pdf"
    pdf = make_pdf([PARAGRAPH])
    with env.db.service_transaction() as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key)"
            " values (%s, %s, 'Refund policy.pdf', 'application/pdf', %s, %s)",
            (INGEST_SAMPLE_DOCUMENT, INGEST_SAMPLE_WORKSPACE, len(pdf), key),
        )
    env.s3.put_object(Bucket=BUCKET, Key=key, Body=pdf, ContentType="application/pdf")

    def run(name: str) -> dict[str, Any]:
        return handle(json.loads((EVENTS_DIR / "ingest" / f"{name}.json").read_text()))

    assert run("s3-object-created") == {"batchItemFailures": []}
    assert env.document(UUID(INGEST_SAMPLE_DOCUMENT))["status"] == "queued"
    assert sent == [{"storage_key": key}]
    assert run("landed") == {"batchItemFailures": []}
    assert env.document(UUID(INGEST_SAMPLE_DOCUMENT))["status"] == "ready"
