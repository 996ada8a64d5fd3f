"""The documents' producer side and their files' ends, against the real database and moto's AWS: the ingest
queue (the local sink; SQS in batches of 10), the plan limit under concurrent uploads, a reprocess through the workspaces app reaching the sink,
a delete S3 fails to finish (still 204), the purge of a deleted workspace deleting its files, and account erasure deleting the files of the
workspaces it deletes (and only those)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter, Hang
from oneai.account.erasure import erase_account
from oneai.admin.workspace_purge import purge_deleted_workspaces
from oneai.attachments.storage import ObjectStore
from oneai.config import get_settings, override_settings
from oneai.db.connection import Database
from oneai.errors import PlanLimitError
from oneai.knowledge.document_models import DocumentCreate
from oneai.knowledge.documents import create_documents
from oneai.knowledge.ingest_queue import enqueue_ingest, set_local_ingest_sink
from oneai.logging import logger
from tests.aws_support import fake_aws_credentials
from tests.conftest import AppUser
from tests.integration.test_workspace_admin import delete_days_ago, no_razorpay, purge_everything_due
from tests.integration.test_workspaces_rls import personal_workspace, team

BUCKET = "oneai-knowledge-test"
REGION = "us-east-1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 with the bucket; the settings name it (no endpoint: moto intercepts the default one)."""
    fake_aws_credentials(monkeypatch, REGION)
    with mock_aws(), override_settings(attachments_bucket=BUCKET, s3_endpoint_url=None):
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def sink() -> Iterator[list[dict[str, str]]]:
    received: list[dict[str, str]] = []
    set_local_ingest_sink(received.append)
    yield received
    set_local_ingest_sink(None)


def keys(s3: Any, prefix: str) -> list[str]:
    return [str(item["Key"]) for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def add_document_file(db: Database, s3: Any, workspace_id: UUID) -> str:
    document_id = uuid.uuid4()
    key = f"knowledge/{workspace_id}/{document_id}/notes.txt"
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key)"
            " values (%s, %s, 'notes.txt', 'text/plain', 5, %s)",
            (document_id, workspace_id, key),
        )
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"notes")
    return key


def test_messages_go_to_the_local_sink_one_per_document(sink: list[dict[str, str]]) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    with override_settings(ingest_queue_url=None):
        enqueue_ingest(ids)
        enqueue_ingest([])
    assert sink == [{"document_id": str(i)} for i in ids]


def test_messages_go_to_sqs_ten_per_call(monkeypatch: pytest.MonkeyPatch, sink: list[dict[str, str]]) -> None:
    fake_aws_credentials(monkeypatch, REGION)
    ids = [uuid.uuid4() for _ in range(23)]
    with mock_aws():
        from oneai.knowledge import ingest_queue

        monkeypatch.setattr(ingest_queue._sqs, "_client", None)  # a client of this mock
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="oneai-ingest-test")["QueueUrl"]
        calls: list[int] = []
        real_send = ingest_queue._send_batch

        def counted(url: str, messages: list[dict[str, str]]) -> None:
            calls.append(len(messages))
            real_send(url, messages)

        monkeypatch.setattr(ingest_queue, "_send_batch", counted)
        with override_settings(ingest_queue_url=queue_url):
            enqueue_ingest(ids)
        bodies: list[dict[str, str]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            if not answer.get("Messages"):
                break
            bodies.extend(json.loads(m["Body"]) for m in answer["Messages"])
        monkeypatch.setattr(ingest_queue._sqs, "_client", None)
    assert calls == [10, 10, 3]
    assert sorted(b["document_id"] for b in bodies) == sorted(str(i) for i in ids)
    assert sink == []  # a configured queue takes them all


def test_reprocess_through_the_app_queues_the_document_and_a_message_reaches_the_sink(
    db: Database, make_user: Callable[..., AppUser], s3: Any, sink: list[dict[str, str]]
) -> None:
    from workspaces.app import build_app

    owner = make_user()
    workspace_id = UUID(str(personal_workspace(db, owner.id)["id"]))
    key = add_document_file(db, s3, workspace_id)
    document_id = key.split("/")[2]
    with db.service_transaction() as conn:
        conn.execute(
            "update public.documents set status = 'failed', error = 'the file is empty' where id = %s",
            (document_id,),
        )
    with TestClient(build_app()) as client:
        answer = client.post(f"/documents/{document_id}/reprocess", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["error"]) == ("queued", None)
    assert sink == [{"document_id": document_id}]


def test_a_delete_whose_file_s3_cannot_delete_answers_204_and_the_document_is_gone(
    db: Database, make_user: Callable[..., AppUser], s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The rows go in the committed transaction; S3 failing afterwards (here: the bucket the function names
    does not exist) leaves the file behind, logged without its key (it holds the filename), and the
    answer is still 204."""
    from workspaces.app import build_app

    owner = make_user()
    workspace_id = UUID(str(personal_workspace(db, owner.id)["id"]))
    key = add_document_file(db, s3, workspace_id)
    document_id = key.split("/")[2]
    with (
        override_settings(attachments_bucket="oneai-no-such-bucket"),
        TestClient(build_app()) as client,
        caplog.at_level(logging.INFO, logger=logger.name),
    ):
        deleted = client.delete(f"/documents/{document_id}", headers=owner.headers)
        after = client.get(f"/documents/{document_id}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert after.status_code == 404
    assert keys(s3, f"knowledge/{workspace_id}/") == [key]  # left behind, for the workspace's purge
    [left] = [r for r in caplog.records if r.getMessage() == "stored objects left behind after a delete"]
    assert (left.kind, left.count, left.error_type) == ("document files", 1, "UnavailableError")  # type: ignore[attr-defined]
    assert not any("notes.txt" in str(vars(record)) for record in caplog.records)


def test_the_purge_deletes_the_files_of_the_workspaces_it_purges_and_only_theirs(
    db: Database, make_user: Callable[..., AppUser], s3: Any
) -> None:
    purge_everything_due(db)
    owner = make_user()
    gone_id = team(db, owner, name="Gone")
    kept_id = UUID(str(personal_workspace(db, owner.id)["id"]))
    add_document_file(db, s3, gone_id)
    kept_key = add_document_file(db, s3, kept_id)
    delete_days_ago(db, gone_id, 31)

    assert purge_deleted_workspaces(db) == 1
    assert keys(s3, f"knowledge/{gone_id}/") == []
    assert keys(s3, f"knowledge/{kept_id}/") == [kept_key]


def test_erasure_deletes_the_files_of_the_workspaces_the_user_alone_owned(
    db: Database, make_user: Callable[..., AppUser], s3: Any
) -> None:
    leaving, staying = make_user(), make_user()
    personal = UUID(str(personal_workspace(db, leaving.id)["id"]))
    alone = team(db, leaving, {staying.id: "editor"}, name="Alone")
    shared_with_staying = team(db, staying, {leaving.id: "owner"}, name="Shared")
    add_document_file(db, s3, personal)
    add_document_file(db, s3, alone)
    shared_key = add_document_file(db, s3, shared_with_staying)

    erase_account(db, leaving.id, razorpay=no_razorpay)
    assert keys(s3, f"knowledge/{personal}/") == []
    assert keys(s3, f"knowledge/{alone}/") == []
    assert keys(s3, f"knowledge/{shared_with_staying}/") == [shared_key]


def test_two_uploads_at_once_cannot_both_take_the_last_slot(
    db: Database, make_user: Callable[..., AppUser], s3: Any
) -> None:
    """The second upload waits for the first one's transaction (the workspace's lock), then counts it: without
    the lock it would count 9 committed documents while the first is still open, and both would pass."""
    owner = make_user()
    workspace_id = UUID(str(personal_workspace(db, owner.id)["id"]))
    store = ObjectStore(get_settings())
    one = DocumentCreate(filename="a.txt", media_type="text/plain", size=10)
    with db.user_transaction(owner.principal) as conn:
        create_documents(conn, db.settings, store, workspace_id, [one] * 9, bulk=True)

    first_inserted, second_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def second() -> None:
        first_inserted.wait(10)
        try:
            with db.user_transaction(owner.principal) as conn:
                create_documents(conn, db.settings, store, workspace_id, [one])
            outcome["second"] = "created"
        except PlanLimitError as error:
            outcome["second"] = error.details
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with db.user_transaction(owner.principal) as conn:
        create_documents(conn, db.settings, store, workspace_id, [one])
        first_inserted.set()
        assert not second_done.wait(1)  # the second waits for this transaction
    thread.join(10)
    assert outcome["second"] == {"limit": 10, "used": 10, "tier": "free"}


def test_a_hanging_embedding_service_fails_the_search_within_the_functions_time(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    """The search runs in a 15 s function: its query's embedding is given short attempts and a budget
    (the ingest's 60 s an attempt would have the function killed without an answer), and the failure is
    the envelope's 502 (an OpenRouter error is not one of the API's errors by itself: it was a 500)."""
    from workspaces.app import build_app

    owner = make_user()
    workspace_id = UUID(str(personal_workspace(db, owner.id)["id"]))
    with FakeOpenRouter(delay=0.0) as openrouter:
        openrouter.script_embeddings(*[Hang(before_first_token=False)] * 5)
        with (
            override_settings(
                openrouter_api_key=SecretStr("sk-or-v1-test-key"), openrouter_base_url=openrouter.base_url
            ),
            TestClient(build_app()) as client,
        ):
            started = time.monotonic()
            answer = client.post(
                f"/workspaces/{workspace_id}/knowledge/search", json={"query": "refunds"}, headers=owner.headers
            )
            took = time.monotonic() - started
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert took < 11, took
