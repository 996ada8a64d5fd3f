"""Routes of a workspace's outbound webhook (API.md "Outbound webhooks"; docs/api/webhooks-outbound.md):
each opens the caller's transaction and calls `oneai.outbound_webhooks.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from oneai.outbound_webhooks import service
from oneai.outbound_webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointSave,
    WebhookEndpointWithSecret,
)
from oneai.pagination import DEFAULT_LIMIT, Page
from oneai.web import CurrentPrincipal, Db
from oneai.web.ids import PathId
from oneai.web.paging import Cursor, Limit
from workspaces.routes import refused

webhook = APIRouter(prefix="/workspaces/{workspace_id}/webhook", tags=["webhook"])

REFUSED_URL = refused(
    422, "VALIDATION_ERROR on `url`: not https, or a host that is not public (the outbound guard)"
)


@webhook.put(
    "",
    summary="Create (201, with the signing secret, shown once) or change (200) the workspace's webhook endpoint",
    responses={201: {"model": WebhookEndpointWithSecret, "description": "created"}, **REFUSED_URL},
)
def save_webhook(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: WebhookEndpointSave, response: Response
) -> WebhookEndpointWithSecret:
    with db.user_transaction(principal) as conn:
        endpoint, created = service.save_endpoint(conn, db.settings, workspace_id, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return endpoint


@webhook.get("", summary="The workspace's webhook endpoint (never its secret), enabled or disabled and why")
def get_webhook(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> WebhookEndpoint:
    with db.user_transaction(principal) as conn:
        return service.get_endpoint(conn, workspace_id)


@webhook.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="Delete the endpoint and its deliveries")
def delete_webhook(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.delete_endpoint(conn, workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@webhook.post("/rotate-secret", summary="A new signing secret (shown once); the old one stops at once")
def rotate_webhook_secret(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> WebhookEndpointWithSecret:
    with db.user_transaction(principal) as conn:
        return service.rotate_secret(conn, workspace_id)


@webhook.post("/test", summary="Deliver a `webhook.test` event now (one attempt) and return its delivery")
def test_webhook(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> WebhookDelivery:
    return service.send_test(db, principal, db.settings, workspace_id)


@webhook.get("/deliveries", summary="The endpoint's deliveries, newest first, with their attempts")
def list_webhook_deliveries(
    principal: CurrentPrincipal,
    db: Db,
    workspace_id: PathId,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[WebhookDelivery]:
    with db.user_transaction(principal) as conn:
        return service.list_deliveries(conn, workspace_id, status=status_filter, limit=limit, cursor=cursor)
