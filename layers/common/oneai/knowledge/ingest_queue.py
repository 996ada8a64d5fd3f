"""The producer side of the ingest queue: `{"document_id": "<id>"}` messages, one per document (reprocess,
the sweep), and `{"storage_key": "<key>"}` messages, one per landed file (the intake), that the ingest
function (its own Lambda, reading `ONEAI_INGEST_QUEUE_URL`) turns into processing.

Sent after the transaction that queued the documents committed (a message for a row that is not there
yet would be claimed by nobody). Without `ONEAI_INGEST_QUEUE_URL` nothing goes to AWS: the messages go to
the local sink when one is set (`make dev` and the tests route them in-process), else they are only
logged. boto3 is imported on first use, and its calls traced like the other AWS clients'.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final
from uuid import UUID

from oneai.aws_client import LazyAwsClient
from oneai.config import get_settings
from oneai.errors import UnavailableError
from oneai.logging import logger

AWS_TIMEOUT_SECONDS: Final = 3
_sqs = LazyAwsClient("sqs", timeout_seconds=AWS_TIMEOUT_SECONDS, max_attempts=2)
# SendMessageBatch takes at most 10 entries a call.
MAX_MESSAGES_PER_CALL: Final = 10

# Where messages go when no queue is configured; None: only logged.
LocalIngestSink = Callable[[dict[str, str]], None]
_local_sink: LocalIngestSink | None = None


def set_local_ingest_sink(sink: LocalIngestSink | None) -> None:
    global _local_sink
    _local_sink = sink


def ingest_message(document_id: UUID) -> dict[str, str]:
    return {"document_id": str(document_id)}


def _send_batch(queue_url: str, messages: Sequence[dict[str, str]]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    entries = [{"Id": str(i), "MessageBody": json.dumps(m)} for i, m in enumerate(messages)]
    try:
        answer = _sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("ingest messages not sent", extra={"error_type": type(exc).__name__})
        raise UnavailableError("The processing queue is unavailable; reprocess the document later") from None
    failed = answer.get("Failed") or []
    if failed:
        logger.warning("ingest messages not sent", extra={"failed": len(failed)})
        raise UnavailableError("The processing queue is unavailable; reprocess the document later")


def landed_message(storage_key: str) -> dict[str, str]:
    """A file that landed, for the ingest (its S3 notification, admitted by `oneai.knowledge.intake`)."""
    return {"storage_key": storage_key}


def enqueue_ingest(document_ids: Sequence[UUID]) -> None:
    """One message per document (10 per SendMessageBatch call). Raises UnavailableError (503) when SQS
    refuses some: the documents stay `queued` (or `uploading`), and reprocessing sends them again."""
    send_ingest_messages([ingest_message(document_id) for document_id in document_ids])


def send_ingest_messages(messages: Sequence[dict[str, str]]) -> None:
    """Send these messages to the ingest queue (the local sink, or only a log line, without one)."""
    if not messages:
        return
    queue_url = get_settings().ingest_queue_url
    if not queue_url:
        if _local_sink is None:
            logger.info("ingest messages not sent: no queue configured", extra={"documents": len(messages)})
            return
        for message in messages:
            _local_sink(message)
        return
    for start in range(0, len(messages), MAX_MESSAGES_PER_CALL):
        _send_batch(queue_url, messages[start : start + MAX_MESSAGES_PER_CALL])
