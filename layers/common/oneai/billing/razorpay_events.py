"""Razorpay webhook bodies as typed models, tolerant of what Razorpay really sends.

An event is `{"entity": "event", "account_id", "event", "contains": [...], "payload": {"subscription":
{"entity": {...}}, "payment": {"entity": {...}}, "invoice": {"entity": {...}}}, "created_at": <unix s>}`.
Quirks handled here (all seen in Razorpay's published samples):
- `notes` is `[]` when empty and an object otherwise;
- `captured` may be the string `"1"`;
- `current_start`/`current_end` (and most times) may be null;
- `created_at` is sometimes inside `payload` instead of at the top;
- unknown fields are ignored; an entity that does not fit its model is dropped (the event is still
  acknowledged and recorded) rather than failing the whole delivery.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oneai.errors import BadRequestError

SUBSCRIPTION_EVENTS: Final = frozenset(
    {
        "subscription.authenticated",
        "subscription.activated",
        "subscription.charged",
        "subscription.pending",
        "subscription.halted",
        "subscription.cancelled",
        "subscription.completed",
        "subscription.updated",
        "subscription.paused",
        "subscription.resumed",
    }
)
PAYMENT_FAILED: Final = "payment.failed"
INVOICE_PAID: Final = "invoice.paid"
# A workspace's credits order is paid (oneai.credits): either event credits it, once.
PAYMENT_CAPTURED: Final = "payment.captured"
ORDER_PAID: Final = "order.paid"
ORDER_EVENTS: Final = frozenset({PAYMENT_CAPTURED, ORDER_PAID})
# A refund of a payment that bought credits is debited, once per refund id (`refund.created` may still
# fail: only the processed refund counts).
REFUND_PROCESSED: Final = "refund.processed"
HANDLED_EVENTS: Final = SUBSCRIPTION_EVENTS | ORDER_EVENTS | {PAYMENT_FAILED, INVOICE_PAID, REFUND_PROCESSED}


class MalformedEventError(BadRequestError):
    """The body is not a JSON object."""


class _Entity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    notes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("notes", mode="before")
    @classmethod
    def _notes(cls, value: Any) -> dict[str, Any]:
        # `[]` when empty, an object otherwise; anything else carries nothing we can read.
        return value if isinstance(value, dict) else {}

    @property
    def note_user_id(self) -> UUID | None:
        """Our user id, when the notes carry one (`notes.user_id`, set when we created it)."""
        value = self.notes.get("user_id")
        if not isinstance(value, str):
            return None
        try:
            return UUID(value)
        except ValueError:
            return None

    @property
    def note_tier(self) -> str | None:
        value = self.notes.get("tier")
        return value if isinstance(value, str) else None

    @property
    def note_replaces(self) -> str | None:
        """The Razorpay id of the subscription this one replaces (`notes.replaces`, set by a plan change)."""
        value = self.notes.get("replaces")
        return value if isinstance(value, str) and value else None


class SubscriptionEntity(_Entity):
    plan_id: str | None = None
    customer_id: str | None = None
    status: str | None = None
    current_start: int | None = None
    current_end: int | None = None
    charge_at: int | None = None
    ended_at: int | None = None
    created_at: int | None = None


class PaymentEntity(_Entity):
    amount: int | None = None
    currency: str | None = None
    status: str | None = None
    method: str | None = None
    captured: bool = False
    order_id: str | None = None
    invoice_id: str | None = None
    customer_id: str | None = None
    # Not in every payment; present on some subscription payments.
    subscription_id: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    error_reason: str | None = None
    error_source: str | None = None
    error_step: str | None = None
    created_at: int | None = None

    @field_validator("captured", mode="before")
    @classmethod
    def _captured(cls, value: Any) -> bool:
        # true / false, but also "1" / "0" (and null) in older samples
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes"}
        return bool(value)


class InvoiceEntity(_Entity):
    subscription_id: str | None = None
    payment_id: str | None = None
    customer_id: str | None = None
    status: str | None = None
    billing_start: int | None = None
    billing_end: int | None = None
    paid_at: int | None = None


class OrderEntity(_Entity):
    amount: int | None = None
    amount_paid: int | None = None
    currency: str | None = None
    status: str | None = None
    receipt: str | None = None


class RefundEntity(_Entity):
    payment_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    status: str | None = None
    created_at: int | None = None


class RazorpayEvent(BaseModel):
    """One webhook delivery, its entities already typed (None when absent or unreadable)."""

    model_config = ConfigDict(frozen=True)

    event: str
    account_id: str | None = None
    created_at: int | None = None
    contains: tuple[str, ...] = ()
    subscription: SubscriptionEntity | None = None
    payment: PaymentEntity | None = None
    invoice: InvoiceEntity | None = None
    order: OrderEntity | None = None
    refund: RefundEntity | None = None
    # Names of the entities present in the payload that did not fit their model.
    unreadable: tuple[str, ...] = ()

    @property
    def is_handled(self) -> bool:
        return self.event in HANDLED_EVENTS

    @property
    def occurred_at(self) -> datetime | None:
        return from_unix(self.created_at)


def from_unix(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


_ENTITY_MODELS: Final[dict[str, type[_Entity]]] = {
    "subscription": SubscriptionEntity,
    "payment": PaymentEntity,
    "invoice": InvoiceEntity,
    "order": OrderEntity,
    "refund": RefundEntity,
}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_event(body: bytes) -> RazorpayEvent:
    """The event in a (verified) body. Raises MalformedEventError when the body is not a JSON object;
    anything else that is odd is tolerated: a missing `event` is `"unknown"`, an unreadable entity None."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # too deep for the parser: not an event either
        raise MalformedEventError("The body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedEventError("The body is not a JSON object")
    payload = document.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    entities: dict[str, Any] = {}
    unreadable: list[str] = []
    for name, model in _ENTITY_MODELS.items():
        wrapper = payload.get(name)
        if wrapper is None:
            continue
        raw = wrapper.get("entity") if isinstance(wrapper, dict) else None
        try:
            entities[name] = model.model_validate(raw)
        except ValidationError:
            unreadable.append(name)
    event = document.get("event")
    contains = document.get("contains")
    account_id = document.get("account_id")
    created_at = _int_or_none(document.get("created_at"))
    if created_at is None:
        created_at = _int_or_none(payload.get("created_at"))
    return RazorpayEvent(
        event=event if isinstance(event, str) and event else "unknown",
        account_id=account_id if isinstance(account_id, str) else None,
        created_at=created_at,
        contains=tuple(c for c in contains if isinstance(c, str)) if isinstance(contains, list) else (),
        unreadable=tuple(unreadable),
        **entities,
    )
