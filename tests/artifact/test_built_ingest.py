"""IngestFunction as built (issue 24): its sample S3 notification, run by the built package in a bare
interpreter against moto's S3 and SQS (the stack's attachments bucket and ingest queue), the test database
and the fake OpenRouter, makes the sample document queued and passes its file to the ingest queue; the
landed file's sample message makes it ready; the sweep's input answers with its report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from lambda_build.layout import ATTACHMENTS_BUCKET, INGEST_QUEUE_URL, REGION
from local.events import EVENTS_DIR, INGEST_SAMPLE_DOCUMENT, INGEST_SAMPLE_WORKSPACE
from local.fake_openrouter import FakeOpenRouter
from tests.artifact.conftest import Built, built_functions, invoke_artifact
from tests.conftest import create_user
from tests.knowledge_files import make_pdf


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / "ingest" / f"{name}.json").read_text())
    return event


def test_ingest_makes_the_sample_upload_ready_and_sweeps(
    database_url: str, moto_endpoint: str, upstream: FakeOpenRouter, runtime_lib: Path, tmp_path: Path
) -> None:
    built: Built = next(b for b in built_functions() if b.name == "IngestFunction")
    owner = create_user(database_url)
    pdf = make_pdf(["Refunds are issued within fourteen days.", "Shipping takes five working days."])
    key = f"knowledge/{INGEST_SAMPLE_WORKSPACE}/{INGEST_SAMPLE_DOCUMENT}/Refund policy.pdf"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "insert into public.workspaces (id, name, slug, owner_id) values (%s, 'Samples', 'artifact-samples', %s)"
            " on conflict (id) do nothing",
            (INGEST_SAMPLE_WORKSPACE, owner.id),
        )
        conn.execute("delete from public.documents where id = %s", (INGEST_SAMPLE_DOCUMENT,))
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key)"
            " values (%s, %s, 'Refund policy.pdf', 'application/pdf', %s, %s)",
            (INGEST_SAMPLE_DOCUMENT, INGEST_SAMPLE_WORKSPACE, len(pdf), key),
        )
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.put_object(Bucket=ATTACHMENTS_BUCKET, Key=key, Body=pdf, ContentType="application/pdf")
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=INGEST_QUEUE_URL.rsplit("/", 1)[1])["QueueUrl"]
    sqs.purge_queue(QueueUrl=queue_url)

    def invoke(*names: str) -> list[Any]:
        return invoke_artifact(
            built,
            [sample(name) for name in names],
            endpoint=moto_endpoint,
            runtime_lib=runtime_lib,
            tmp_path=tmp_path,
            environment={"OPENROUTER_BASE_URL": upstream.base_url, "OPENROUTER_API_KEY": "sk-or-artifact"},
        ).answers

    def document() -> tuple[Any, ...] | None:
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                "select status, pages, attempts,"
                " (select count(*) from public.document_chunks where document_id = %(id)s)"
                " from public.documents where id = %(id)s",
                {"id": INGEST_SAMPLE_DOCUMENT},
            ).fetchone()

    # S3's notice (from the uploads queue): the document is queued and its file passed to the ingest queue
    assert invoke("s3-object-created") == [{"batchItemFailures": []}]
    assert document() == ("queued", None, 0, 0)
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in received] == [{"storage_key": key}]
    # the landed file's message (from the ingest queue) makes it ready; a second delivery of it is skipped
    # (no failure, nothing redone)
    answers = invoke("landed", "landed", "sweep")
    assert answers[:2] == [{"batchItemFailures": []}] * 2
    assert answers[2] == {"requeued": 0, "failed_stalled": 0, "failed_uploads": 0, "resent_queued": 0}
    assert document() == ("ready", 2, 1, 2)
