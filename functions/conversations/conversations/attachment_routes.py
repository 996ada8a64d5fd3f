"""Routes of attachments (issue 12), served by the conversations function: it holds the messages the
attachments belong to, deletes their files with a conversation and serves shared snapshots, so it has
the bucket rights already; one function keeps one cold start and one set of alarms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse

from oneai.attachments import service
from oneai.attachments.models import Attachment, AttachmentCreate, AttachmentUpload
from oneai.attachments.storage import get_object_store
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

REDIRECT: dict[int | str, dict[str, Any]] = {
    302: {"description": "`Location`: a presigned S3 GET of the file, valid ONEAI_ATTACHMENT_URL_SECONDS"}
}
STORAGE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorEnvelope, "description": "UNAVAILABLE: file storage or the database is unavailable"}
}

attachments = APIRouter(prefix="/attachments", tags=["attachments"])
shared_attachments = APIRouter(tags=["shared"])


@attachments.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start an upload: a presigned POST to S3 (S3 enforces the type and the size)",
    responses=STORAGE_DOWN,
)
def create_attachment(principal: CurrentPrincipal, db: Db, body: AttachmentCreate) -> AttachmentUpload:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        return service.create_upload(conn, store, principal.user_id, body)


@attachments.get(
    "/{attachment_id}", summary="An uploaded attachment (404 until its upload is done)", responses=STORAGE_DOWN
)
def get_attachment(principal: CurrentPrincipal, db: Db, attachment_id: PathId) -> Attachment:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        return service.get_attachment(conn, store, attachment_id)


@attachments.get(
    "/{attachment_id}/content",
    summary="The file: a redirect to a short-lived presigned S3 GET",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **STORAGE_DOWN},
)
def get_attachment_content(principal: CurrentPrincipal, db: Db, attachment_id: PathId) -> RedirectResponse:
    store = get_object_store()
    with db.user_transaction(principal) as conn:
        row = service.uploaded_attachment(conn, store, attachment_id)
    return _redirect(service.content_url(store, row))


@shared_attachments.get(
    "/shared/{token}/attachments/{attachment_id}",
    summary="A shared conversation's file while its link is active (no auth)",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **STORAGE_DOWN},
)
def get_shared_attachment(db: Db, token: str, attachment_id: PathId) -> RedirectResponse:
    store = get_object_store()
    with db.anon_transaction() as conn:
        url = service.shared_content_url(conn, store, token, attachment_id)
    return _redirect(url)


def _redirect(url: str) -> RedirectResponse:
    # The presigned URL expires; nobody may cache the redirect beyond it.
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers={"cache-control": "private, no-store"})
