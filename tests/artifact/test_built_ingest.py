"""IngestFunction as built (issue 24): its sample S3 notification, run by the built package in a bare
interpreter against moto's S3 (the stack's attachments bucket), the test database and the fake OpenRouter,
makes the sample document ready; the sweep's input answers with its report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from lambda_build.layout import ATTACHMENTS_BUCKET, REGION
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

    run = invoke_artifact(
        built,
        [sample("s3-object-created"), sample("s3-object-created"), sample("sweep")],
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
        environment={"OPENROUTER_BASE_URL": upstream.base_url, "OPENROUTER_API_KEY": "sk-or-artifact"},
    )

    # the second delivery of the same notification is skipped (no failure, nothing redone)
    assert run.answers[:2] == [{"batchItemFailures": []}] * 2
    assert run.answers[2] == {"requeued": 0, "failed_stalled": 0, "failed_uploads": 0, "resent_queued": 0}
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select status, pages, attempts, (select count(*) from public.document_chunks where document_id = %(id)s)"
            " from public.documents where id = %(id)s",
            {"id": INGEST_SAMPLE_DOCUMENT},
        ).fetchone()
    assert row == ("ready", 2, 1, 2)
