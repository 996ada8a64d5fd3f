"""The intake of uploaded files: what makes a document `queued` when its file lands (issue 24 item 6,
API.md "Documents (knowledge)": `uploading` -> `queued` -> `processing` -> `ready` | `failed`).

S3 notifies the document uploads queue of every file stored under `knowledge/`. IngestFunction reads that
queue through its own event source (`Uploads` in template.yaml: up to 10 notices a batch, at most 2 at a
time, never waiting behind the documents being processed, whose event source has the other 5 of the
function's 7 reserved executions). For each notice, `admit_uploads` marks the documents `queued` and sends
one `{"storage_key"}` message per file to the ingest queue, where a worker takes it (`oneai.knowledge.ingest`
reads that message as it reads the notice itself). Without this step a file waiting for a worker (a bulk
upload of more files than there are workers) would still read `uploading` after it landed.

Marked first, sent after the commit: a send SQS refuses fails the record, which comes back (marking again
changes nothing); a document left `queued` without its message is sent again by the ingest's sweep.
"""

from __future__ import annotations

import json
from uuid import UUID

from oneai.db.connection import Database
from oneai.db.knowledge_ingest import mark_landed
from oneai.knowledge.ingest import document_refs
from oneai.knowledge.ingest_queue import landed_message, send_ingest_messages


def is_upload_notice(body: str) -> bool:
    """Whether a queue message is S3's own notice (an upload's notification, or the test event S3 sends when
    the notification is configured), not one of the ingest's messages."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and ("Records" in message or message.get("Event") == "s3:TestEvent")


def admit_uploads(database: Database, body: str) -> list[UUID]:
    """Mark the documents of the files this notice names `queued` and send each file to the ingest; the
    ids of the documents marked (a file whose document is past `uploading`, or has none, is sent all the
    same: the ingest decides). Raises `MalformedMessageError` for a message that is not a notice, and
    `UnavailableError` when SQS refuses the send (the record is retried)."""
    keys = [ref.storage_key for ref in document_refs(body) if ref.storage_key is not None]
    if not keys:
        return []
    with database.service_transaction() as conn:
        marked = mark_landed(conn, keys)
    send_ingest_messages([landed_message(key) for key in keys])
    return marked
