"""The `make dev` stand-in for the webhook rule -> the webhook queue -> WebhookDeliveryFunction.

Two producers, as in AWS: the domain events the template's rule for this function's queue matches (its
`source` and `detail-type` lists; `oneai.events` hands every event published without `ONEAI_EVENT_BUS` to
the local sinks), wrapped as EventBridge wraps them, and the delivery function's own retries
(`oneai.outbound_webhooks.queue.send_later`: the message, visible after its delay, like SQS's
DelaySeconds). The function's `Handler` from template.yaml runs on one worker thread; a record it reports
as failed comes back after a short wait, up to `MAX_RECEIVES` times (the redrive policy), then is dropped
with a log line (the dead-letter queue's part).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from local.event_bus import eventbridge_event, sqs_record
from local.server import LambdaContext, LambdaHandler, load_handler
from local.template_routes import Function
from oneai.events import DomainEvent
from oneai.outbound_webhooks.queue import set_local_webhook_sink

logger = logging.getLogger("oneai.local")

WEBHOOK_HANDLER: Final = "webhook_delivery.handler.lambda_handler"
MAX_RECEIVES: Final = 5
RETRY_DELAY_SECONDS: Final = 0.5
Pattern = tuple[frozenset[str], frozenset[str]]  # sources, detail types


def _arn_of(value: Any) -> str | None:
    """The logical id of `!GetAtt X.Arn` (long form), else None."""
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        parts = target if isinstance(target, list) else str(target).split(".", 1)
        if len(parts) == 2 and parts[1] == "Arn":
            return str(parts[0])
    return None


def rule_patterns(template: Mapping[str, Any], function: Function) -> list[Pattern]:
    """The event patterns of the EventBridge rules that target a queue the function reads."""
    resources = template["Resources"]
    events = (resources[function.logical_id].get("Properties") or {}).get("Events") or {}
    queues = {
        _arn_of((event.get("Properties") or {}).get("Queue"))
        for event in events.values()
        if event.get("Type") == "SQS"
    }
    patterns: list[Pattern] = []
    for resource in resources.values():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resource.get("Properties") or {}
        if not any(_arn_of(target.get("Arn")) in queues for target in properties.get("Targets") or []):
            continue
        pattern = properties.get("EventPattern") or {}
        patterns.append((frozenset(pattern.get("source") or []), frozenset(pattern.get("detail-type") or [])))
    return patterns


def matches(patterns: list[Pattern], event: DomainEvent) -> bool:
    return any(event.source in sources and event.detail_type in types for sources, types in patterns)


class LocalWebhookQueue:
    def __init__(self, function: Function, patterns: list[Pattern], handler: LambdaHandler | None = None) -> None:
        self._function = function
        self._patterns = patterns
        self._handler = handler
        self._heap: list[tuple[float, int, str, str, int]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="local-webhook-queue", daemon=True)

    def start(self) -> LocalWebhookQueue:
        if self._handler is None:
            self._handler = load_handler(self._function)
        self._thread.start()
        set_local_webhook_sink(self.send_later)
        return self

    def stop(self) -> None:
        set_local_webhook_sink(None)
        with self._ready:
            self._stopped = True
            self._ready.notify()
        self._thread.join(timeout=30)

    def accepts(self, event: DomainEvent) -> bool:
        return matches(self._patterns, event)

    def publish(self, event: DomainEvent) -> None:
        """A domain event, when the rule matches it (EventBridge's `id` is the event's id)."""
        if self.accepts(event):
            self._put(json.dumps(eventbridge_event(event), default=str), 0.0, 1)

    def send_later(self, message: dict[str, Any], delay_seconds: float) -> None:
        self._put(json.dumps(message), delay_seconds, 1)

    def _put(self, body: str, delay: float, receive_count: int, message_id: str | None = None) -> None:
        item = (
            time.monotonic() + max(delay, 0.0),
            next(self._order),
            message_id or str(uuid.uuid4()),
            body,
            receive_count,
        )
        with self._ready:
            heapq.heappush(self._heap, item)
            self._ready.notify()

    def _next(self) -> tuple[str, str, int] | None:
        with self._ready:
            while True:
                if self._stopped:
                    return None
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _due, _order, message_id, body, receive_count = heapq.heappop(self._heap)
                        return message_id, body, receive_count
                    self._ready.wait(timeout=wait)
                else:
                    self._ready.wait()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            message_id, body, receive_count = item
            if self._deliver(message_id, body, receive_count):
                continue
            if receive_count >= MAX_RECEIVES:
                logger.error("webhook message dropped after %d deliveries (the dead-letter queue)", receive_count)
                continue
            self._put(body, RETRY_DELAY_SECONDS, receive_count + 1, message_id)

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
        except Exception:
            logger.exception("the webhook delivery function failed")
            return False
        failures = (answer or {}).get("batchItemFailures") or []
        return not any(failure.get("itemIdentifier") == message_id for failure in failures)


def webhook_function(functions: list[Function]) -> Function | None:
    return next((fn for fn in functions if fn.handler == WEBHOOK_HANDLER), None)
