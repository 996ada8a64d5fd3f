"""Which domain events (EventBridge `source` / `detail-type`) become which webhook events, and the payload
each is sent as: `{"type","timestamp","data"}`, `data` holding ids and numbers (never a document's or a
message's text)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

KNOWLEDGE_SOURCE: Final = "oneai.knowledge"
WIDGET_SOURCE: Final = "oneai.widget"
CREDITS_SOURCE: Final = "oneai.credits"
DOCUMENT_PROCESSED: Final = "DocumentProcessed"
DOCUMENT_FAILED: Final = "DocumentFailed"
CONVERSATION_RATED: Final = "ConversationRated"
CREDITS_LOW: Final = "CreditsLow"
TEST_EVENT: Final = "webhook.test"

# (source, detail-type) -> the webhook event type, and the detail's keys its data carries.
WEBHOOK_EVENTS: Final[dict[tuple[str, str], tuple[str, tuple[str, ...]]]] = {
    (KNOWLEDGE_SOURCE, DOCUMENT_PROCESSED): (
        "document.processed",
        ("workspace_id", "document_id", "filename", "status", "chunks", "pages"),
    ),
    (KNOWLEDGE_SOURCE, DOCUMENT_FAILED): (
        "document.failed",
        ("workspace_id", "document_id", "filename", "status", "error"),
    ),
    (WIDGET_SOURCE, CONVERSATION_RATED): (
        "conversation.rated",
        ("workspace_id", "chatbot_id", "conversation_id", "score"),
    ),
    (CREDITS_SOURCE, CREDITS_LOW): ("credits.low", ("workspace_id", "balance", "threshold")),
}
EVENT_TYPES: Final = tuple(sorted(kind for kind, _keys in WEBHOOK_EVENTS.values()))


class NotAWebhookEventError(ValueError):
    """An EventBridge event no webhook is made of (or without its workspace): nothing to deliver."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    event_id: str
    workspace_id: UUID
    type: str
    body: str


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def payload(event_type: str, moment: datetime, data: dict[str, Any]) -> str:
    """The JSON body sent (compact; the signature is over exactly these bytes)."""
    return json.dumps(
        {"type": event_type, "timestamp": utc_text(moment), "data": data}, separators=(",", ":"), default=str
    )


def from_eventbridge(event: dict[str, Any]) -> WebhookEvent:
    """The webhook event of an EventBridge event (as the SQS body of the rule's target carries it)."""
    found = WEBHOOK_EVENTS.get((str(event.get("source")), str(event.get("detail-type"))))
    detail = event.get("detail")
    if found is None or not isinstance(detail, dict) or not event.get("id"):
        raise NotAWebhookEventError("not a webhook event")
    kind, keys = found
    try:
        workspace_id = UUID(str(detail.get("workspace_id")))
    except ValueError:
        raise NotAWebhookEventError("the event names no workspace") from None
    try:
        moment = datetime.fromisoformat(str(event.get("time")).replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.now(UTC)
    data = {key: detail.get(key) for key in keys}
    return WebhookEvent(str(event["id"]), workspace_id, kind, payload(kind, moment, data))
