"""The `make dev` stand-in for the ingest queue: S3 ObjectCreated notifications and `{"document_id"}`
messages -> the IngestFunction's own `Handler` from template.yaml, on one worker thread.

Two producers, as in AWS: the local S3 (`local.s3_server.LocalS3.on_object_created`) for files stored
under `knowledge/` (the body is the S3 event notification S3 would send), and
`oneai.knowledge.ingest_queue.enqueue_ingest` (reprocess, the sweep), whose local sink this queue is. A
record the handler reports as failed is delivered again (the queue's redrive), like the event bus does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from local.event_bus import LocalEventBus
from local.server import load_handler
from local.template_routes import Function
from oneai.knowledge.ingest import KNOWLEDGE_PREFIX
from oneai.knowledge.ingest_queue import set_local_ingest_sink

INGEST_HANDLER: Final = "ingest.handler.lambda_handler"


def s3_object_created(bucket: str, key: str, *, size: int = 0, event_time: str | None = None) -> dict[str, Any]:
    """The notification S3 sends a queue for one stored object (keys URL-encoded, a space as '+')."""
    from urllib.parse import quote_plus

    event_time = event_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "local",
                "eventTime": event_time,
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "knowledge-uploads",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size},
                },
            }
        ]
    }


class LocalIngestQueue(LocalEventBus):
    def start(self) -> LocalIngestQueue:
        if self._handler is None:
            self._handler = load_handler(self._function)
        self._thread.start()
        set_local_ingest_sink(self.send)
        return self

    def stop(self) -> None:
        set_local_ingest_sink(None)
        self._queue.put(None)
        self._thread.join(timeout=30)

    def send(self, message: dict[str, str]) -> None:
        self._queue.put((str(uuid.uuid4()), json.dumps(message), 1))

    def object_created(self, bucket: str, key: str) -> None:
        if key.startswith(KNOWLEDGE_PREFIX):
            self._queue.put((str(uuid.uuid4()), json.dumps(s3_object_created(bucket, key)), 1))


def ingest_function(functions: list[Function]) -> Function | None:
    return next((fn for fn in functions if fn.handler == INGEST_HANDLER), None)
