"""A delivery's attempts (docs/api/webhooks-outbound.md "Delivery").

Each attempt: the endpoint's URL checked again by THE guard (`oneai.outbound`: a host that now resolves to
a private address fails the attempt with the guard's reason), the body POSTed through the guarded client
(connecting to the checked address only, redirects never followed: a 3xx fails the attempt), within
`ONEAI_WEBHOOK_TIMEOUT_SECONDS`, signed by the Standard Webhooks scheme (`signing`). The outcome:
- 2xx: `succeeded`;
- 410 Gone: the delivery `failed` and the endpoint disabled (no more deliveries; the reason recorded);
- anything else (another status, a refused URL, a timeout, a broken connection): the next attempt after
  `backoff(n)`, while that stays within `ONEAI_WEBHOOK_RETRY_WINDOW_SECONDS` (a day) of the delivery's
  creation; after that, `failed`.
Every attempt is recorded (time, status code, duration, the first 500 characters of the answer, the error).

At least once: an attempt is recorded only if it is still the one due (`attempts` = its number - 1), so a
repeated queue message does not record an attempt twice; a worker that dies mid-send leaves the message on
the queue and the attempt is made again (same `webhook-id`: receivers drop repeats by it).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import httpx

from oneai.config import Settings
from oneai.crypto.envelope import Sealed, open_sealed
from oneai.db import outbound_webhooks as repo
from oneai.db.connection import Database
from oneai.logging import logger
from oneai.outbound import UnsafeUrlError, check_url, guarded_client
from oneai.outbound_webhooks import signing
from oneai.outbound_webhooks.events import NotAWebhookEventError, WebhookEvent, from_eventbridge
from oneai.outbound_webhooks.queue import send_later

EXCERPT_CHARS: Final = 500
EXCERPT_BYTES: Final = 2048
# The longest single wait between two attempts (the window of a day is what ends the retries).
MAX_BACKOFF_SECONDS: Final = 3 * 3600
GONE_REASON: Final = "the endpoint answered 410 Gone"
DISABLED: Final = "the endpoint was disabled"
# A pending delivery this late past its next attempt lost its queue message: the sweep sends it again.
OVERDUE_GRACE_SECONDS: Final = 3600

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff(attempt: int, base: float, *, rng: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt `attempt` (1, 2, ...): exponential, jittered over the whole step
    [base x 2^(n-1), base x 2^n), so retries of many deliveries spread out while each delivery's waits
    still grow (30-60 s, 60-120 s, 120-240 s, ... with the default base), at most 3 hours."""
    step = base * float(2 ** (attempt - 1))
    return min(step * (1.0 + rng()), float(MAX_BACKOFF_SECONDS))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    excerpt: str | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def post(settings: Settings, url: str, headers: dict[str, str], body: str) -> AttemptResult:
    """One POST through the guard (checked now), never raising: the outcome as an `AttemptResult`."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        checked = check_url(url, allow_loopback=settings.allow_loopback_urls)
    except UnsafeUrlError as exc:
        return AttemptResult(None, took(), None, f"the URL was refused: {exc.reason}"[:EXCERPT_CHARS])
    timeout = settings.webhook_timeout_seconds
    try:
        with (
            guarded_client(checked, timeout=httpx.Timeout(timeout)) as client,
            client.stream("POST", checked.url, content=body.encode(), headers=headers) as response,
        ):
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= EXCERPT_BYTES:
                    break
            code = response.status_code
    except httpx.TimeoutException:
        return AttemptResult(None, took(), None, f"no answer within {timeout:g} s")
    except UnsafeUrlError as exc:
        return AttemptResult(None, took(), None, f"the URL was refused: {exc.reason}"[:EXCERPT_CHARS])
    except httpx.HTTPError as exc:
        return AttemptResult(None, took(), None, f"the request failed ({type(exc).__name__})")
    excerpt = received.decode("utf-8", errors="replace")[:EXCERPT_CHARS] or None
    error = None
    if 300 <= code < 400:
        error = f"answered {code}: redirects are not followed"
    elif not 200 <= code < 300:
        error = f"answered {code}"
    return AttemptResult(code, took(), excerpt, error)


class Deliverer:
    """Makes deliveries' attempts. `clock` is for tests (a day of retries without a day of waiting)."""

    def __init__(self, database: Database, settings: Settings, *, clock: Clock = utc_now) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock

    def deliver_event(self, event: WebhookEvent) -> list[UUID]:
        """The event's deliveries (one per subscribed endpoint, once per event id), each attempted now."""
        with self.database.service_transaction() as conn:
            ids = repo.create_deliveries(
                conn,
                workspace_id=event.workspace_id,
                event_id=event.event_id,
                event_type=event.type,
                body=event.body,
            )
        for delivery_id in ids:
            self.attempt(delivery_id, 1)
        return ids

    def attempt(self, delivery_id: UUID, number: int, *, retry: bool = True) -> str | None:
        """Attempt `number` of the delivery, when it is the one due; the delivery's status after it (None:
        nothing was done: done already, gone, or not due yet and sent back to the queue)."""
        with self.database.service_transaction() as conn:
            row = repo.sendable(conn, delivery_id)
            if row is None or row.status != "pending" or row.attempts >= number:
                return None
            if row.endpoint_status != "enabled":
                repo.abandon(conn, delivery_id, DISABLED)
                return "failed"
        now = self.clock()
        if retry and row.next_attempt_at is not None and row.next_attempt_at > now:
            wait = (row.next_attempt_at - now).total_seconds()
            send_later(_message(delivery_id, number), wait)  # a hop of a wait longer than SQS's 900 s
            return None
        secret = open_sealed(
            Sealed.from_bytes(row.sealed_secret), workspace_id=row.workspace_id
        ).get_secret_value()
        msg_id = signing.message_id(delivery_id)
        headers = signing.headers(secret, msg_id, int(now.timestamp()), row.body)
        del secret
        result = post(self.settings, row.url, headers, row.body)
        status, next_at = self._outcome(result, row.created_at, now, number, retry=retry)
        with self.database.service_transaction() as conn:
            recorded = repo.record_attempt(
                conn,
                delivery=delivery_id,
                number=number,
                status=status,
                next_attempt_at=next_at,
                error=result.error,
                attempted_at=now,
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                excerpt=result.excerpt,
            )
            if recorded and result.gone:
                repo.disable_endpoint(conn, row.endpoint_id, GONE_REASON)
        logger.info(
            "webhook attempt",
            extra={
                "delivery_id": str(delivery_id),
                "attempt": number,
                "status_code": result.status_code,
                "duration_ms": result.duration_ms,
                "outcome": status,
                "recorded": recorded,
            },
        )
        if recorded and next_at is not None:
            send_later(_message(delivery_id, number + 1), (next_at - now).total_seconds())
        return status

    def _outcome(
        self, result: AttemptResult, created_at: datetime, now: datetime, number: int, *, retry: bool
    ) -> tuple[str, datetime | None]:
        if result.succeeded:
            return "succeeded", None
        if result.gone or not retry:
            return "failed", None
        next_at = now + timedelta(seconds=backoff(number, self.settings.webhook_retry_base_seconds))
        if next_at > created_at + timedelta(seconds=self.settings.webhook_retry_window_seconds):
            return "failed", None
        return "pending", next_at


def _message(delivery_id: UUID, number: int) -> dict[str, Any]:
    return {"delivery_id": str(delivery_id), "attempt": number}


class MalformedMessageError(ValueError):
    """A queue message that is neither an EventBridge event nor `{"delivery_id","attempt"}`."""


def handle_message(deliverer: Deliverer, body: str) -> None:
    """One delivery-queue message: an EventBridge event of the webhook rule (its deliveries made and
    attempted), or a delivery's next attempt. An event no webhook is made of is dropped (logged)."""
    try:
        message = json.loads(body)
    except ValueError:
        raise MalformedMessageError("the message is not JSON") from None
    if not isinstance(message, dict):
        raise MalformedMessageError("the message is not an object")
    if "delivery_id" in message:
        try:
            delivery_id, number = UUID(str(message["delivery_id"])), int(message["attempt"])
        except (KeyError, TypeError, ValueError):
            raise MalformedMessageError("a malformed retry message") from None
        deliverer.attempt(delivery_id, number)
        return
    try:
        event = from_eventbridge(message)
    except NotAWebhookEventError as exc:
        logger.info("event not delivered to webhooks", extra={"reason": str(exc)})
        return
    deliverer.deliver_event(event)


def sweep_overdue(database: Database, *, limit: int = 500) -> int:
    """Send again the next attempt of pending deliveries whose message was lost (SQS refused the send,
    or it went to the dead-letter queue); the attempt itself stays idempotent. How many were sent."""
    with database.service_transaction() as conn:
        found = repo.overdue(conn, grace_seconds=OVERDUE_GRACE_SECONDS, limit=limit)
    for delivery_id, attempts in found:
        send_later(_message(delivery_id, attempts + 1), 0)
    return len(found)
