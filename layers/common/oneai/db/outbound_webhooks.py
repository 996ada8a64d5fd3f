"""Data layer of the outbound webhooks (supabase/migrations/20261128000000_outbound_webhooks.sql).

The endpoint's user-facing statements run in the caller's user transaction under RLS (admins and owners of
the workspace) and never read `sealed_secret` (the `authenticated` role has no SELECT on it). The
deliveries' writes and the reads of the sealed secret are the service's (the delivery function)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

_ENDPOINT: Final = """e.id, e.workspace_id, e.url, e.events, e.status, e.disabled_reason, e.disabled_at,
  e.created_at, e.updated_at"""
_DELIVERY: Final = """d.id, d.workspace_id, d.endpoint_id, d.event_id, d.event_type, d.status, d.attempts,
  d.next_attempt_at, d.last_error, d.created_at, d.completed_at"""


class EndpointRow(BaseModel):
    id: UUID
    workspace_id: UUID
    url: str
    events: list[str]
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryRow(BaseModel):
    id: UUID
    workspace_id: UUID
    endpoint_id: UUID
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


class AttemptRow(BaseModel):
    delivery_id: UUID
    number: int
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None
    error: str | None


class SendableRow(BaseModel):
    """The service's: a delivery with what its next attempt needs (the endpoint and its sealed secret)."""

    id: UUID
    workspace_id: UUID
    endpoint_id: UUID
    event_type: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    url: str
    endpoint_status: str
    sealed_secret: bytes


GET_ENDPOINT = f"select {_ENDPOINT} from public.webhook_endpoints e where e.workspace_id = %s"

INSERT_ENDPOINT = f"""
insert into public.webhook_endpoints as e (workspace_id, url, events, sealed_secret, created_by)
values (%(workspace)s, %(url)s, %(events)s, %(sealed)s, (select auth.uid()))
returning {_ENDPOINT}"""

# A change of URL or events enables the endpoint again (a disabled one is re-enabled by saving it).
UPDATE_ENDPOINT = f"""
update public.webhook_endpoints e
set url = %(url)s, events = %(events)s, status = 'enabled', disabled_reason = null, disabled_at = null
where e.workspace_id = %(workspace)s
returning {_ENDPOINT}"""

ROTATE_SECRET = f"""
update public.webhook_endpoints e set sealed_secret = %(sealed)s where e.workspace_id = %(workspace)s
returning {_ENDPOINT}"""

DELETE_ENDPOINT = "delete from public.webhook_endpoints e where e.workspace_id = %s returning e.id"

# The service's: one delivery per enabled endpoint of the (live) workspace subscribed to the event, once.
# `next_attempt_at` stays null until a first attempt failed: the first attempt is due at once.
CREATE_DELIVERIES = """
insert into public.webhook_deliveries (workspace_id, endpoint_id, event_id, event_type, body)
select e.workspace_id, e.id, %(event_id)s, %(event_type)s, %(body)s
from public.webhook_endpoints e join public.workspaces w on w.id = e.workspace_id and w.deleted_at is null
where e.workspace_id = %(workspace)s and e.status = 'enabled' and %(event_type)s = any(e.events)
on conflict (endpoint_id, event_id) do nothing"""

# The deliveries of an event not yet attempted (a redelivered event message finds those it left).
FIRST_ATTEMPTS_DUE = """
select d.id from public.webhook_deliveries d
where d.event_id = %(event_id)s and d.workspace_id = %(workspace)s and d.status = 'pending' and d.attempts = 0
order by d.created_at, d.id"""

CREATE_TEST_DELIVERY = """
insert into public.webhook_deliveries (workspace_id, endpoint_id, event_id, event_type, body)
values (%(workspace)s, %(endpoint)s, %(event_id)s, 'webhook.test', %(body)s)
returning id"""

SENDABLE = """
select d.id, d.workspace_id, d.endpoint_id, d.event_type, d.body, d.status, d.attempts, d.next_attempt_at,
  d.created_at, e.url, e.status as endpoint_status, e.sealed_secret
from public.webhook_deliveries d join public.webhook_endpoints e on e.id = d.endpoint_id
where d.id = %s"""

# An attempt's outcome, recorded only by the attempt that was due (`attempts` still the one before it).
RECORD_ATTEMPT = """
with updated as (
  update public.webhook_deliveries d
  set attempts = %(number)s, status = %(status)s, next_attempt_at = %(next_attempt_at)s,
    last_error = %(error)s, completed_at = case when %(status)s = 'pending' then null else %(attempted_at)s end
  where d.id = %(delivery)s and d.attempts = %(number)s - 1 and d.status = 'pending'
  returning d.id, d.workspace_id
)
insert into public.webhook_attempts (delivery_id, workspace_id, number, attempted_at, status_code, duration_ms,
  response_excerpt, error)
select u.id, u.workspace_id, %(number)s, %(attempted_at)s, %(status_code)s, %(duration_ms)s, %(excerpt)s, %(error)s
from updated u
returning delivery_id"""

# A delivery whose endpoint is gone or disabled: failed without an attempt.
ABANDON = """
update public.webhook_deliveries d set status = 'failed', next_attempt_at = null, last_error = %(reason)s,
  completed_at = now()
where d.id = %(delivery)s and d.status = 'pending'"""

DISABLE_ENDPOINT = """
update public.webhook_endpoints e set status = 'disabled', disabled_reason = %(reason)s, disabled_at = now()
where e.id = %(endpoint)s and e.status = 'enabled'"""

LIST_DELIVERIES = f"""
select {_DELIVERY} from public.webhook_deliveries d
where d.workspace_id = %(workspace)s
  and (%(status)s::text is null or d.status = %(status)s)
  and (%(after_created)s::timestamptz is null or (d.created_at, d.id) < (%(after_created)s, %(after_id)s::uuid))
order by d.created_at desc, d.id desc
limit %(limit)s"""

# The service's: pending deliveries whose next attempt is overdue by `grace` (its queue message was lost).
OVERDUE = """
select d.id, d.attempts from public.webhook_deliveries d
where d.status = 'pending' and d.next_attempt_at < now() - %(grace)s * interval '1 second'
order by d.next_attempt_at limit %(limit)s"""

GET_DELIVERY = f"select {_DELIVERY} from public.webhook_deliveries d where d.id = %s"

ATTEMPTS_OF = """
select a.delivery_id, a.number, a.attempted_at, a.status_code, a.duration_ms, a.response_excerpt, a.error
from public.webhook_attempts a where a.delivery_id = any(%s) order by a.delivery_id, a.number"""


def get_endpoint(conn: Connection, workspace_id: UUID) -> EndpointRow | None:
    with conn.cursor(row_factory=class_row(EndpointRow)) as cur:
        return cur.execute(GET_ENDPOINT, (workspace_id,)).fetchone()


def insert_endpoint(
    conn: Connection, workspace_id: UUID, *, url: str, events: list[str], sealed: bytes
) -> EndpointRow:
    with conn.cursor(row_factory=class_row(EndpointRow)) as cur:
        row = cur.execute(
            INSERT_ENDPOINT, {"workspace": workspace_id, "url": url, "events": events, "sealed": sealed}
        ).fetchone()
    assert row is not None
    return row


def update_endpoint(conn: Connection, workspace_id: UUID, *, url: str, events: list[str]) -> EndpointRow | None:
    with conn.cursor(row_factory=class_row(EndpointRow)) as cur:
        return cur.execute(UPDATE_ENDPOINT, {"workspace": workspace_id, "url": url, "events": events}).fetchone()


def rotate_secret(conn: Connection, workspace_id: UUID, sealed: bytes) -> EndpointRow | None:
    with conn.cursor(row_factory=class_row(EndpointRow)) as cur:
        return cur.execute(ROTATE_SECRET, {"workspace": workspace_id, "sealed": sealed}).fetchone()


def delete_endpoint(conn: Connection, workspace_id: UUID) -> bool:
    return conn.execute(DELETE_ENDPOINT, (workspace_id,)).fetchone() is not None


def create_deliveries(
    conn: Connection, *, workspace_id: UUID, event_id: str, event_type: str, body: str
) -> list[UUID]:
    """The service's: the event's deliveries (new ones, and earlier ones never attempted), by id."""
    params = {"workspace": workspace_id, "event_id": event_id, "event_type": event_type, "body": body}
    conn.execute(CREATE_DELIVERIES, params)
    return [UUID(str(row["id"])) for row in conn.execute(FIRST_ATTEMPTS_DUE, params).fetchall()]


def create_test_delivery(
    conn: Connection, *, workspace_id: UUID, endpoint_id: UUID, event_id: str, body: str
) -> UUID:
    row = conn.execute(
        CREATE_TEST_DELIVERY,
        {"workspace": workspace_id, "endpoint": endpoint_id, "event_id": event_id, "body": body},
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def sendable(conn: Connection, delivery_id: UUID) -> SendableRow | None:
    with conn.cursor(row_factory=class_row(SendableRow)) as cur:
        return cur.execute(SENDABLE, (delivery_id,)).fetchone()


def record_attempt(conn: Connection, **params: Any) -> bool:
    """Whether this attempt was recorded (False: another worker recorded attempt `number` first)."""
    return conn.execute(RECORD_ATTEMPT, params).fetchone() is not None


def abandon(conn: Connection, delivery_id: UUID, reason: str) -> None:
    conn.execute(ABANDON, {"delivery": delivery_id, "reason": reason})


def disable_endpoint(conn: Connection, endpoint_id: UUID, reason: str) -> None:
    conn.execute(DISABLE_ENDPOINT, {"endpoint": endpoint_id, "reason": reason})


def list_deliveries(
    conn: Connection,
    workspace_id: UUID,
    *,
    status: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[DeliveryRow]:
    params = {
        "workspace": workspace_id,
        "status": status,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        return cur.execute(LIST_DELIVERIES, params).fetchall()


def get_delivery(conn: Connection, delivery_id: UUID) -> DeliveryRow | None:
    with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        return cur.execute(GET_DELIVERY, (delivery_id,)).fetchone()


def attempts_of(conn: Connection, delivery_ids: list[UUID]) -> list[AttemptRow]:
    with conn.cursor(row_factory=class_row(AttemptRow)) as cur:
        return cur.execute(ATTEMPTS_OF, (delivery_ids,)).fetchall()


def overdue(conn: Connection, *, grace_seconds: int, limit: int) -> list[tuple[UUID, int]]:
    rows = conn.execute(OVERDUE, {"grace": grace_seconds, "limit": limit}).fetchall()
    return [(UUID(str(row["id"])), int(row["attempts"])) for row in rows]
