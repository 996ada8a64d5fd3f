"""The `make dev` stand-in for EventBridge -> SQS -> the notifications function.

Every domain event published without `ONEAI_EVENT_BUS` (`oneai.events`) that the notification rule of
template.yaml matches comes here (`local.__main__.start_event_bus`; the webhook rule's events go to
`local/webhook_queue.py`): it is wrapped the way
AWS wraps it (an EventBridge event, as the body of an SQS record) and handed to the notifications
function's own `Handler` from template.yaml, on one worker thread (like one warm container, one invocation
at a time), after the publishing request has moved on. A record the handler reports as failed
(`batchItemFailures`) is delivered again, up to `MAX_RECEIVES` times like the queue's redrive policy, then
dropped with a log line (the dead-letter queue's part). The function writes each email as an .eml file
to `ONEAI_MAIL_OUTBOX`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from local.server import LambdaContext, LambdaHandler, load_handler
from local.template_routes import Function
from oneai.events import DomainEvent, set_local_sink

logger = logging.getLogger("oneai.local")

MAX_RECEIVES: Final = 3
RETRY_DELAY_SECONDS: Final = 0.5
LOCAL_ACCOUNT: Final = "123456789012"
LOCAL_REGION: Final = "local"


def eventbridge_event(event: DomainEvent, *, bus: str = "default") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event.detail_type,
        "source": event.source,
        "account": LOCAL_ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": LOCAL_REGION,
        "resources": [],
        "detail": event.detail,
        "event-bus-name": bus,
    }


def sqs_record(body: str, *, receive_count: int, message_id: str) -> dict[str, Any]:
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": f"local-{message_id}-{receive_count}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": "events.amazonaws.com",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:oneai-notifications",
        "awsRegion": LOCAL_REGION,
    }


class LocalEventBus:
    def __init__(self, function: Function, handler: LambdaHandler | None = None) -> None:
        self._function = function
        self._handler = handler
        self._queue: queue.Queue[tuple[str, str, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="local-event-bus", daemon=True)

    def start(self) -> LocalEventBus:
        if self._handler is None:
            self._handler = load_handler(self._function)
        self._thread.start()
        set_local_sink(self.publish)
        return self

    def stop(self) -> None:
        set_local_sink(None)
        self._queue.put(None)
        self._thread.join(timeout=10)

    def publish(self, event: DomainEvent) -> None:
        self._queue.put((str(uuid.uuid4()), json.dumps(eventbridge_event(event), default=str), 1))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            message_id, body, receive_count = item
            if not self._deliver(message_id, body, receive_count):
                if receive_count >= MAX_RECEIVES:
                    logger.error("event dropped after %d deliveries (the dead-letter queue)", receive_count)
                    continue
                time.sleep(RETRY_DELAY_SECONDS)
                self._queue.put((message_id, body, receive_count + 1))

    def _deliver(self, message_id: str, body: str, receive_count: int) -> bool:
        assert self._handler is not None
        context = LambdaContext(
            function_name=self._function.logical_id,
            memory_limit_in_mb=self._function.memory_mb,
            timeout_seconds=self._function.timeout_seconds,
        )
        record = sqs_record(body, receive_count=receive_count, message_id=message_id)
        try:
            answer = self._handler({"Records": [record]}, context)
        except Exception:  # every record of the batch failed (Powertools raises then): retried
            logger.exception("the notifications function failed")
            return False
        failures = (answer or {}).get("batchItemFailures") or []
        return not any(failure.get("itemIdentifier") == message_id for failure in failures)


NOTIFICATIONS_HANDLER: Final = "notifications.handler.lambda_handler"


def notifications_function(functions: list[Function]) -> Function | None:
    """The function the rules of template.yaml send the domain events to (through its queue)."""
    return next((fn for fn in functions if fn.handler == NOTIFICATIONS_HANDLER), None)
