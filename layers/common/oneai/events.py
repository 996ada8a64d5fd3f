"""Domain events on Amazon EventBridge: best effort, never in the way of the request that caused them,
and always published after the transaction that caused them committed. Events carry ids and numbers,
never message text or payment bodies.

The product's events (source / detail-type) consumed by the notifications function (its rule in
template.yaml names them; `oneai.workspaces` / `WorkspaceInvitationCreated` and `oneai.credits` /
`CreditsLow` too):
- `oneai.account` / `UserCreated`: a user's first authenticated request (`oneai.notifications.welcome`);
- `oneai.quota` / `QuotaWarning`: a reserve crossed 80, 90 or 100 % of a quota (`oneai.quota.warnings`);
- `oneai.billing` / `PaymentFailed`, `PaymentReceived`, `SubscriptionEnded` (`oneai.billing.webhooks`,
  the grace-period and paid-period sweeps);
- `oneai.notifications` / `UsageSummaryDue`: the monthly usage-summary sweep (`oneai.notifications.summary`).

Consumed by the outbound webhooks' delivery function (`WebhookEventsRule`; `oneai.outbound_webhooks.events`):
`oneai.knowledge` / `DocumentProcessed`, `DocumentFailed` (the ingest), `oneai.widget` / `ConversationRated`
(the widget's rating) and `oneai.credits` / `CreditsLow`.

Without `ONEAI_EVENT_BUS` nothing goes to AWS: the event goes to the local sink when one is set (`make dev`
delivers it in-process to the handlers whose rules match it, `local/event_bus.py` and
`local/webhook_queue.py`), else it is only logged. boto3
comes with the Lambda runtime; it is imported on first use, not at cold start.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from oneai.config import Settings, get_settings
from oneai.logging import logger
from oneai.observability import trace_calls

AWS_TIMEOUT_SECONDS = 2
# PutEvents takes at most 10 entries a call.
MAX_ENTRIES_PER_CALL: Final = 10


@dataclass(frozen=True, slots=True)
class DomainEvent:
    source: str
    detail_type: str
    detail: dict[str, Any]


# Where events go when no bus is configured: `make dev` sets one (local/event_bus.py); None: only logged.
LocalSink = Callable[[DomainEvent], None]
_local_sink: LocalSink | None = None


def set_local_sink(sink: LocalSink | None) -> None:
    global _local_sink
    _local_sink = sink


class EventPublisher:
    def __init__(self, bus_name: str | None) -> None:
        self._bus_name = bus_name
        self._client: Any = None
        self._lock = threading.Lock()

    def _events_client(self) -> Any:
        with self._lock:
            if self._client is None:
                trace_calls("botocore")
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=AWS_TIMEOUT_SECONDS,
                    read_timeout=AWS_TIMEOUT_SECONDS,
                    retries={"max_attempts": 2, "mode": "standard"},
                )
                self._client = boto3.client("events", config=config)
            return self._client

    def publish(self, source: str, detail_type: str, detail: dict[str, Any]) -> bool:
        """True when EventBridge (or the local sink) accepted the event."""
        return self.publish_all([DomainEvent(source, detail_type, detail)]) == 1

    def publish_all(self, events: Sequence[DomainEvent]) -> int:
        """Publish `events` (10 per PutEvents call); returns how many were accepted."""
        if not events:
            return 0
        if not self._bus_name:
            return self._publish_locally(events)
        accepted = 0
        for start in range(0, len(events), MAX_ENTRIES_PER_CALL):
            accepted += self._put_events(events[start : start + MAX_ENTRIES_PER_CALL])
        return accepted

    def _put_events(self, events: Sequence[DomainEvent]) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        entries = [
            {
                "Source": event.source,
                "DetailType": event.detail_type,
                "Detail": json.dumps(event.detail, separators=(",", ":"), default=str),
                "EventBusName": self._bus_name,
            }
            for event in events
        ]
        detail_types = sorted({event.detail_type for event in events})
        try:
            answer = self._events_client().put_events(Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("event not sent", extra={"detail_type": detail_types, "error_type": type(exc).__name__})
            return 0
        failed = int(answer.get("FailedEntryCount") or 0)
        if failed:
            logger.warning("event rejected", extra={"detail_type": detail_types, "failed": failed})
        return len(events) - failed

    def _publish_locally(self, events: Sequence[DomainEvent]) -> int:
        sink = _local_sink
        if sink is None:
            for event in events:
                logger.info(
                    "event not sent: no event bus configured",
                    extra={"source": event.source, "detail_type": event.detail_type},
                )
            return 0
        for event in events:
            sink(event)
        return len(events)


_publisher: tuple[Settings, EventPublisher] | None = None


def get_publisher() -> EventPublisher:
    global _publisher
    settings = get_settings()
    if _publisher is None or _publisher[0] is not settings:
        _publisher = (settings, EventPublisher(settings.event_bus_name))
    return _publisher[1]
