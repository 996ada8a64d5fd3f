"""Domain events on Amazon EventBridge (quota warnings, payment failures): best effort, never in the
way of the request that caused them.

Without `ONEAI_EVENT_BUS` (local development) nothing is sent and the event is only logged. boto3 comes
with the Lambda runtime; it is imported on first use, not at cold start.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from oneai.config import Settings, get_settings
from oneai.logging import logger

AWS_TIMEOUT_SECONDS = 2


class EventPublisher:
    def __init__(self, bus_name: str | None) -> None:
        self._bus_name = bus_name
        self._client: Any = None
        self._lock = threading.Lock()

    def _events_client(self) -> Any:
        with self._lock:
            if self._client is None:
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
        """True when EventBridge accepted the event."""
        if not self._bus_name:
            logger.info(
                "event not sent: no event bus configured", extra={"source": source, "detail_type": detail_type}
            )
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        entry = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":"), default=str),
            "EventBusName": self._bus_name,
        }
        try:
            answer = self._events_client().put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            logger.warning("event not sent", extra={"detail_type": detail_type, "error_type": type(exc).__name__})
            return False
        if answer.get("FailedEntryCount"):
            logger.warning("event rejected", extra={"detail_type": detail_type})
            return False
        return True


_publisher: tuple[Settings, EventPublisher] | None = None


def get_publisher() -> EventPublisher:
    global _publisher
    settings = get_settings()
    if _publisher is None or _publisher[0] is not settings:
        _publisher = (settings, EventPublisher(settings.event_bus_name))
    return _publisher[1]
