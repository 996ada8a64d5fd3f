"""The outbound webhook routes' logic (served by the workspaces function: the endpoint is a workspace's
setting, admins' like its members and keys).

Every route runs in the caller's user transaction under RLS: admins and owners (`require_role(...,
"admin")`: 404 for a stranger, 403 below admin). The URL passes THE guard when it is saved (422
`VALIDATION_ERROR` on `url` with its reason) and again at every attempt. The secret is sealed
(`oneai.crypto.envelope.seal`, bound to the workspace) and shown only in the answer that created it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

from oneai.auth import Principal
from oneai.config import Settings
from oneai.crypto.envelope import seal
from oneai.db import outbound_webhooks as repo
from oneai.db.connection import Connection, Database
from oneai.errors import NotFoundError
from oneai.logging import logger
from oneai.outbound import UnsafeUrlError, check_url
from oneai.outbound_webhooks import signing
from oneai.outbound_webhooks.delivery import Deliverer
from oneai.outbound_webhooks.events import TEST_EVENT, payload
from oneai.outbound_webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointSave,
    WebhookEndpointWithSecret,
)
from oneai.pagination import Page, decode_cursor, page_of
from oneai.workspaces.service import require_role

NOT_FOUND: Final = "The workspace has no webhook endpoint"


def _endpoint(conn: Connection, workspace_id: UUID) -> repo.EndpointRow:
    require_role(conn, workspace_id, "admin")
    row = repo.get_endpoint(conn, workspace_id)
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return row


def save_endpoint(
    conn: Connection, settings: Settings, workspace_id: UUID, body: WebhookEndpointSave
) -> tuple[WebhookEndpointWithSecret, bool]:
    """The endpoint created or changed, and whether it was created (its secret is in the answer then)."""
    require_role(conn, workspace_id, "admin")
    try:
        check_url(body.url, allow_loopback=settings.allow_loopback_urls)
    except UnsafeUrlError as exc:
        raise exc.validation_error("url") from None
    events: list[str] = list(body.events)
    existing = repo.get_endpoint(conn, workspace_id)
    secret: str | None = None
    if existing is None:
        secret = signing.new_secret()
        sealed = seal(secret, workspace_id=workspace_id).to_bytes()
        row = repo.insert_endpoint(conn, workspace_id, url=body.url, events=events, sealed=sealed)
    else:
        updated = repo.update_endpoint(conn, workspace_id, url=body.url, events=events)
        if updated is None:  # deleted in between
            raise NotFoundError(NOT_FOUND)
        row = updated
    created = existing is None
    logger.info("webhook endpoint saved", extra={"workspace_id": str(workspace_id), "new_endpoint": created})
    return WebhookEndpointWithSecret.model_validate({**row.model_dump(), "secret": secret}), created


def rotate_secret(conn: Connection, workspace_id: UUID) -> WebhookEndpointWithSecret:
    _endpoint(conn, workspace_id)
    secret = signing.new_secret()
    row = repo.rotate_secret(conn, workspace_id, seal(secret, workspace_id=workspace_id).to_bytes())
    if row is None:
        raise NotFoundError(NOT_FOUND)
    logger.info("webhook secret rotated", extra={"workspace_id": str(workspace_id)})
    return WebhookEndpointWithSecret.model_validate({**row.model_dump(), "secret": secret})


def get_endpoint(conn: Connection, workspace_id: UUID) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate(_endpoint(conn, workspace_id).model_dump())


def delete_endpoint(conn: Connection, workspace_id: UUID) -> None:
    _endpoint(conn, workspace_id)
    if not repo.delete_endpoint(conn, workspace_id):
        raise NotFoundError(NOT_FOUND)


def _shown(row: repo.DeliveryRow, attempts: list[repo.AttemptRow]) -> WebhookDelivery:
    return WebhookDelivery.model_validate(
        {
            **row.model_dump(),
            "message_id": signing.message_id(row.id),
            "attempts": [WebhookAttempt.model_validate(a.model_dump()) for a in attempts],
        }
    )


def _with_attempts(conn: Connection, rows: list[repo.DeliveryRow]) -> list[WebhookDelivery]:
    attempts = repo.attempts_of(conn, [row.id for row in rows]) if rows else []
    return [_shown(row, [a for a in attempts if a.delivery_id == row.id]) for row in rows]


def list_deliveries(
    conn: Connection, workspace_id: UUID, *, status: DeliveryStatus | None, limit: int, cursor: str | None
) -> Page[WebhookDelivery]:
    require_role(conn, workspace_id, "admin")
    after = None
    if cursor:
        keys = decode_cursor(cursor, {"created_at": datetime.fromisoformat, "id": UUID})
        after = (keys["created_at"], keys["id"])
    rows = repo.list_deliveries(conn, workspace_id, status=status, after=after, limit=limit + 1)
    page = page_of(rows, limit, lambda row: {"created_at": row.created_at.isoformat(), "id": str(row.id)})
    return Page(items=_with_attempts(conn, page.items), next_cursor=page.next_cursor)


def send_test(db: Database, principal: Principal, settings: Settings, workspace_id: UUID) -> WebhookDelivery:
    """`POST /workspaces/{id}/webhook/test`: a `webhook.test` event delivered now (one attempt, not
    retried), and its delivery with that attempt."""
    with db.user_transaction(principal) as conn:
        endpoint = _endpoint(conn, workspace_id)
    event_id = f"test_{uuid.uuid4().hex}"
    body = payload(TEST_EVENT, datetime.now(UTC), {"workspace_id": str(workspace_id)})
    with db.service_transaction() as conn:
        delivery_id = repo.create_test_delivery(
            conn, workspace_id=workspace_id, endpoint_id=endpoint.id, event_id=event_id, body=body
        )
    Deliverer(db, settings).attempt(delivery_id, 1, retry=False)
    with db.user_transaction(principal) as conn:
        row = repo.get_delivery(conn, delivery_id)
        if row is None:  # the endpoint was deleted meanwhile
            raise NotFoundError(NOT_FOUND)
        return _with_attempts(conn, [row])[0]
