"""The delivery queue's producer side: `{"delivery_id", "attempt"}` messages that bring a delivery's next
attempt back to the delivery function after its backoff delay.

SQS delays a message at most 900 s (`DelaySeconds`); a longer wait goes in hops: the message arrives
early, the function sees the attempt is not due yet and sends it again with the rest of the wait (at most
900 s again). Without `ONEAI_WEBHOOK_QUEUE_URL` the messages go to the local sink (`make dev` and the
tests: local/webhook_queue.py), else they are only logged."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from oneai.aws_client import LazyAwsClient
from oneai.config import get_settings
from oneai.logging import logger

MAX_DELAY_SECONDS: Final = 900
AWS_TIMEOUT_SECONDS: Final = 3
_sqs = LazyAwsClient("sqs", timeout_seconds=AWS_TIMEOUT_SECONDS, max_attempts=3)

# message, delay in seconds
LocalWebhookSink = Callable[[dict[str, Any], float], None]
_local_sink: LocalWebhookSink | None = None


def set_local_webhook_sink(sink: LocalWebhookSink | None) -> None:
    global _local_sink
    _local_sink = sink


def send_later(message: dict[str, Any], delay_seconds: float) -> None:
    """`message` to the delivery queue, visible after `delay_seconds` (at most 900: see above). Raises
    when SQS refuses it (the caller's SQS record is then retried)."""
    delay = min(max(delay_seconds, 0.0), float(MAX_DELAY_SECONDS))
    queue_url = get_settings().webhook_queue_url
    if queue_url:
        _sqs().send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(message),
            DelaySeconds=min(math.ceil(delay), MAX_DELAY_SECONDS),
        )
        return
    sink = _local_sink
    if sink is None:
        logger.info("webhook retry not queued: no queue configured", extra={"delay_seconds": round(delay, 3)})
        return
    sink(message, delay)
