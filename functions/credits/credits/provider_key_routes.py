"""Routes of a workspace's own provider keys (bring your own): who pays for its replies when it is not its
credits. Each opens the caller's transaction and calls `oneai.provider_keys.service`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from oneai.provider_keys import service
from oneai.provider_keys.models import ProviderKey, ProviderKeyCreate, ProviderKeyTest, ProviderKeyUpdate
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

workspace_keys = APIRouter(prefix="/workspaces/{workspace_id}/provider-keys", tags=["provider keys"])
provider_keys = APIRouter(prefix="/provider-keys", tags=["provider keys"])

Responses = dict[int | str, dict[str, Any]]


def refused(status_code: int, description: str) -> Responses:
    return {status_code: {"model": ErrorEnvelope, "description": description}}


ADMINS: Responses = {
    **refused(403, "FORBIDDEN: a member below admin"),
    **refused(404, "NOT_FOUND: no such workspace for the caller"),
}
ONE_KEY: Responses = refused(404, "NOT_FOUND: no such key, or not one the caller administers")
SAVE: Responses = {
    **refused(409, "CONFLICT: the workspace has a key of this provider with this name"),
    **refused(422, "VALIDATION_ERROR: a field is not valid (base_url: refused by the outbound guard)"),
    **refused(503, "UNAVAILABLE: the key could not be sealed (KMS); nothing was stored"),
}


@workspace_keys.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a provider key (admins and owners): stored sealed, answered masked",
    responses={**ADMINS, **SAVE},
)
def create_provider_key(
    principal: CurrentPrincipal, db: Db, workspace_id: PathId, body: ProviderKeyCreate
) -> ProviderKey:
    with db.user_transaction(principal) as conn:
        return service.create_key(conn, db.settings, workspace_id, body)


@workspace_keys.get("", summary="The workspace's provider keys, masked (admins and owners)", responses=ADMINS)
def list_provider_keys(principal: CurrentPrincipal, db: Db, workspace_id: PathId) -> list[ProviderKey]:
    with db.user_transaction(principal) as conn:
        return service.list_keys(conn, db.settings, workspace_id)


@provider_keys.get("/{provider_key_id}", summary="One provider key, masked", responses=ONE_KEY)
def get_provider_key(principal: CurrentPrincipal, db: Db, provider_key_id: PathId) -> ProviderKey:
    with db.user_transaction(principal) as conn:
        return service.get_key(conn, db.settings, provider_key_id)


@provider_keys.patch(
    "/{provider_key_id}",
    summary="Rename, set or remove its monthly limit, replace the key, move a custom key's base_url",
    responses={**ONE_KEY, **SAVE},
)
def update_provider_key(
    principal: CurrentPrincipal, db: Db, provider_key_id: PathId, body: ProviderKeyUpdate
) -> ProviderKey:
    with db.user_transaction(principal) as conn:
        return service.update_key(conn, db.settings, provider_key_id, body)


@provider_keys.delete(
    "/{provider_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a provider key (its usage records keep their numbers, no longer its name)",
    responses=ONE_KEY,
)
def delete_provider_key(principal: CurrentPrincipal, db: Db, provider_key_id: PathId) -> Response:
    with db.user_transaction(principal) as conn:
        service.delete_key(conn, provider_key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@provider_keys.post(
    "/{provider_key_id}/test",
    summary="Try the key with one cheap call (GET {base}/models); a refusal marks it invalid",
    responses={**ONE_KEY, **refused(503, "UNAVAILABLE: the key could not be opened (KMS)")},
)
def test_provider_key(principal: CurrentPrincipal, db: Db, provider_key_id: PathId) -> ProviderKeyTest:
    return service.run_key_test(db, principal, db.settings, provider_key_id)
