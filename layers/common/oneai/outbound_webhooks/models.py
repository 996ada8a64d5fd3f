"""The outbound webhook routes' bodies and answers (API.md "Outbound webhooks")."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from oneai.timestamps import UtcTime

EventType = Literal["document.processed", "document.failed", "conversation.rated", "credits.low"]
EndpointStatus = Literal["enabled", "disabled"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]


class WebhookEndpointSave(BaseModel):
    """`PUT /workspaces/{id}/webhook`."""

    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="where deliveries are POSTed: https, a public host (the outbound guard)")
    events: list[EventType] = Field(min_length=1, max_length=4, description="the events to receive")

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(value))


class WebhookEndpoint(BaseModel):
    id: UUID
    workspace_id: UUID
    url: str
    events: list[str]
    status: EndpointStatus
    disabled_reason: str | None = Field(description="why deliveries stopped (e.g. the endpoint answered 410)")
    disabled_at: UtcTime | None
    created_at: UtcTime
    updated_at: UtcTime


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str | None = Field(
        description="`whsec_<base64 of 32 bytes>`: shown once, when the endpoint is created or its secret"
        " rotated; null when an existing endpoint was changed (it keeps its secret)"
    )


class WebhookAttempt(BaseModel):
    number: int
    attempted_at: UtcTime
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None = Field(description="the first 500 characters of the receiver's answer")
    error: str | None


class WebhookDelivery(BaseModel):
    id: UUID
    message_id: str = Field(description="the `webhook-id` header of every attempt")
    event_id: str
    event_type: str
    status: DeliveryStatus
    next_attempt_at: UtcTime | None
    last_error: str | None
    created_at: UtcTime
    completed_at: UtcTime | None
    attempts: list[WebhookAttempt]
