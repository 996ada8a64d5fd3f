"""The knowledge ingest under `make dev`'s pieces, with no AWS: a file posted through a presigned POST to
the local S3 (moto's server) under `knowledge/` reaches the IngestFunction's handler (loaded from
template.yaml as `make dev` does) as an S3 notification, and the document becomes ready; a reprocess
sent through `enqueue_ingest` reaches it through the local ingest sink."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter
from local.ingest_queue import LocalIngestQueue, ingest_function
from local.s3_server import LocalS3
from local.template_routes import list_functions, load_template
from oneai.attachments.storage import ObjectStore
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.knowledge.ingest_queue import enqueue_ingest
from tests.integration.test_openrouter_client import API_KEY
from tests.integration.test_workspaces_rls import team
from tests.knowledge_files import make_pdf

pytestmark = pytest.mark.timeout(90)

BUCKET = "oneai-local-ingest"


@pytest.fixture
def local_stack(monkeypatch: pytest.MonkeyPatch, db: Database) -> Iterator[Settings]:
    with FakeOpenRouter(delay=0.0) as upstream, LocalS3() as s3:
        s3.create_bucket(BUCKET)
        for name, value in s3.environment(BUCKET).items():
            monkeypatch.setenv(name, value)
        with override_settings(
            attachments_bucket=BUCKET,
            s3_endpoint_url=s3.endpoint_url,
            openrouter_base_url=upstream.base_url,
            openrouter_api_key=SecretStr(API_KEY),
        ) as settings:
            function = ingest_function(list_functions(load_template()))
            assert function is not None
            queue = LocalIngestQueue(function).start()
            s3.on_object_created = queue.object_created
            try:
                yield settings
            finally:
                queue.stop()


def document(db: Database, document_id: UUID) -> dict[str, Any]:
    with db.service_transaction() as conn:
        row = conn.execute(
            "select status, error, pages, chunks_total, attempts,"
            " (select count(*) from public.document_chunks where document_id = %(id)s) as chunks"
            " from public.documents where id = %(id)s",
            {"id": document_id},
        ).fetchone()
    assert row is not None
    return dict(row)


def wait_for(db: Database, document_id: UUID, status: str, *, attempts: int = 1) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = document(db, document_id)
        if row["status"] == status and row["attempts"] == attempts:
            return row
        time.sleep(0.1)
    raise AssertionError(f"the document is {document(db, document_id)}, not {status}")


def test_presigned_upload_to_local_s3_becomes_ready_then_reprocesses(
    local_stack: Settings, db: Database, make_user: Any
) -> None:
    workspace_id = team(db, make_user())
    document_id = uuid.uuid4()
    key = f"knowledge/{workspace_id}/{document_id}/Refund policy.pdf"
    pdf = make_pdf(["Refunds are issued within fourteen days.", "Shipping takes five working days."])
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key)"
            " values (%s, %s, 'Refund policy.pdf', 'application/pdf', %s, %s)",
            (document_id, workspace_id, len(pdf), key),
        )
    url, fields = ObjectStore(local_stack).presigned_post(
        key, media_type="application/pdf", max_bytes=len(pdf), expires_in=300
    )
    answer = httpx.post(url, data=fields, files={"file": ("Refund policy.pdf", pdf, "application/pdf")})
    assert answer.status_code in {200, 204}, answer.text

    row = wait_for(db, document_id, "ready")
    assert (row["pages"], row["chunks"], row["error"]) == (2, 2, None)

    with db.service_transaction() as conn:
        conn.execute("update public.documents set status = 'queued' where id = %s", (document_id,))
    enqueue_ingest([document_id])
    row = wait_for(db, document_id, "ready", attempts=2)
    assert row["chunks"] == 2
