"""Attachments: the upload (a presigned POST S3 enforces), the record, and the short-lived links.

An attachment is `pending` from `POST /attachments` until its object is seen in S3; the first read
checks with a HEAD and records it `uploaded` (with the size S3 holds). An object that S3 holds but that
breaks the rules the presigned POST set (another type, too big: only possible if S3 did not enforce
them) is deleted with its record, and the attachment stays not found.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from oneai.attachments import storage
from oneai.attachments.images import InlineImage, NotAnImageError, parse_data_url
from oneai.attachments.models import (
    Attachment,
    AttachmentCreate,
    AttachmentRow,
    AttachmentUpload,
    PresignedPost,
    attachment_url,
    object_key,
    user_prefix,
)
from oneai.config import get_settings
from oneai.db import attachments as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ConflictError, NotFoundError, ValidationError, field_error
from oneai.ids import canonical_uuid
from oneai.logging import logger

NOT_FOUND_MESSAGE = "Attachment not found"


def _too_large(size: int, limit: int) -> ValidationError:
    return ValidationError(
        f"An attachment may be at most {limit} bytes",
        details={"errors": [field_error("size", f"must be at most {limit} bytes, got {size}", "too_large")]},
    )


def create_upload(
    conn: Connection, store: storage.ObjectStore, user_id: UUID, body: AttachmentCreate
) -> AttachmentUpload:
    """Record a pending attachment and sign the upload of its object (S3 enforces type and size)."""
    settings = get_settings()
    if body.size > settings.max_attachment_bytes:
        raise _too_large(body.size, settings.max_attachment_bytes)
    attachment_id = uuid.uuid4()
    key = object_key(user_id, attachment_id)
    url, fields = store.presigned_post(
        key, media_type=body.media_type, max_bytes=body.size, expires_in=settings.attachment_upload_seconds
    )
    repo.insert_attachment(
        conn,
        attachment_id=attachment_id,
        user_id=user_id,
        filename=body.filename,
        media_type=body.media_type,
        size=body.size,
        s3_key=key,
    )
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.attachment_upload_seconds)
    return AttachmentUpload(
        id=attachment_id,
        url=attachment_url(attachment_id),
        upload=PresignedPost(url=url, fields=fields),
        expires_at=expires_at,
    )


def confirm_uploaded(conn: Connection, store: storage.ObjectStore, row: AttachmentRow) -> AttachmentRow | None:
    """`row` once its object is in S3 (HEAD on the first read, recorded); None while it is not there."""
    if row.status == "uploaded":
        return row
    found = store.head(row.s3_key)
    if found is None:
        return None
    if found.media_type != row.media_type or found.size > min(row.size, get_settings().max_attachment_bytes):
        # S3 enforces both conditions of the presigned POST; this is the belt to its braces.
        logger.warning("uploaded object broke its upload rules; deleted", extra={"attachment_id": str(row.id)})
        store.delete([row.s3_key])
        repo.delete_attachment(conn, row.id)
        return None
    return repo.mark_uploaded(conn, row.id, size=found.size) or row


def uploaded_attachment(conn: Connection, store: storage.ObjectStore, attachment_id: UUID) -> AttachmentRow:
    """The caller's uploaded attachment, or 404 (someone else's, unknown, or not uploaded yet)."""
    row = repo.get_attachment(conn, attachment_id)
    confirmed = None if row is None else confirm_uploaded(conn, store, row)
    if confirmed is None:
        raise NotFoundError(NOT_FOUND_MESSAGE)
    return confirmed


def get_attachment(conn: Connection, store: storage.ObjectStore, attachment_id: UUID) -> Attachment:
    return Attachment.of(uploaded_attachment(conn, store, attachment_id))


def content_url(store: storage.ObjectStore, row: AttachmentRow) -> str:
    """A presigned GET of the object that expires after ONEAI_ATTACHMENT_URL_SECONDS."""
    return store.presigned_get(
        row.s3_key,
        media_type=row.media_type,
        filename=row.filename,
        expires_in=get_settings().attachment_url_seconds,
    )


def shared_content_url(conn: Connection, store: storage.ObjectStore, token: str, attachment_id: UUID) -> str:
    """The link of a shared conversation's attachment, while the share link is active; 404 otherwise."""
    row = repo.shared_attachment(conn, token, attachment_id) if len(token) <= 128 else None
    if row is None:
        raise NotFoundError(NOT_FOUND_MESSAGE)
    return content_url(store, row)


def erase_user_objects(db: Database, user_id: UUID) -> None:
    """Account erasure's storage step: every object under `users/<user_id>/` (idempotent)."""
    del db  # the objects are found by prefix, not through the rows
    if not get_settings().attachments_bucket:
        return  # no bucket configured: nothing can have been stored
    deleted = storage.get_object_store().delete_prefix(user_prefix(user_id))
    logger.info("account objects deleted", extra={"user_id": str(user_id), "objects": deleted})


# --- chat turns -------------------------------------------------------------------------------------

MAX_ATTACHMENTS_PER_MESSAGE = 10
_ATTACHMENT_PATH = re.compile(r"/attachments/(?P<id>[^/]+)/content$")


def attachment_id_in_url(url: str) -> UUID | None:
    """The id in an attachment's `url` (`<API base>/attachments/<id>/content`), or None; the id is read as
    the path of that address reads it (canonical only, `oneai.ids`)."""
    match = _ATTACHMENT_PATH.search(urlsplit(url).path)
    return None if match is None else canonical_uuid(match.group("id"))


def turn_attachments(
    conn: Connection, store: storage.ObjectStore, attachment_ids: Sequence[UUID]
) -> list[AttachmentRow]:
    """The caller's attachments a new message takes, in the order given: 404 for an id that is not the
    caller's, 409 for one whose upload was never made or that another message has already."""
    wanted = list(dict.fromkeys(attachment_ids))
    rows = {row.id: row for row in repo.get_attachments(conn, wanted)}
    missing = [str(i) for i in wanted if i not in rows]
    if missing:
        raise NotFoundError(NOT_FOUND_MESSAGE, details={"attachment_ids": missing})
    taken: list[AttachmentRow] = []
    for attachment_id in wanted:
        row = confirm_uploaded(conn, store, rows[attachment_id])
        if row is None:
            raise ConflictError(
                "The file of this attachment was never uploaded", details={"attachment_id": str(attachment_id)}
            )
        if row.message_id is not None:
            raise ConflictError(
                "This attachment belongs to another message already", details={"attachment_id": str(attachment_id)}
            )
        taken.append(row)
    return taken


def put_inline_image(store: storage.ObjectStore, user_id: UUID, image: InlineImage) -> tuple[UUID, str]:
    """Store an image a chat body carried as a `data:` URL (before the turn's transaction; it stays
    unattached, and so expires, unless the turn commits). Returns its new attachment id and key."""
    attachment_id = uuid.uuid4()
    key = object_key(user_id, attachment_id)
    store.put(key, image.data, media_type=image.media_type, attached=False)
    return attachment_id, key


def record_inline_image(
    conn: Connection, user_id: UUID, attachment_id: UUID, image: InlineImage, *, filename: str
) -> AttachmentRow:
    return repo.insert_attachment(
        conn,
        attachment_id=attachment_id,
        user_id=user_id,
        filename=filename,
        media_type=image.media_type,
        size=len(image.data),
        s3_key=object_key(user_id, attachment_id),
        status="uploaded",
    )


def mark_attached_after_commit(store: storage.ObjectStore, keys: Sequence[str]) -> None:
    """Keep a message's files past the lifecycle rule. After the commit, best effort: a failure is
    logged (the file would expire after a day while its message still lists it)."""
    for key in keys:
        try:
            store.mark_attached(key)
        except Exception:
            logger.exception("attachment not marked attached; it will expire", extra={"key_count": len(keys)})
            return


def model_image_part(
    store: storage.ObjectStore, user_id: UUID, attachment_id: UUID, media_type: str
) -> dict[str, Any]:
    """An OpenRouter image content part: a presigned GET the provider fetches during the request."""
    url = store.presigned_get(
        object_key(user_id, attachment_id),
        media_type=media_type,
        filename=str(attachment_id),
        expires_in=get_settings().attachment_url_seconds,
    )
    return {"type": "image_url", "image_url": {"url": url}}


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """An image a model made, stored in S3; its row is written with the reply."""

    attachment_id: UUID
    key: str
    media_type: str
    size: int


# Generated pictures may be larger than an upload: a model's full-size PNG.
MAX_GENERATED_IMAGE_BYTES = 20 * 1024 * 1024


def store_generated_image(store: storage.ObjectStore, user_id: UUID, url: str) -> GeneratedImage | None:
    """Store a model's `data:` URL image (unattached until its reply is saved); None for one that is not
    an accepted image (logged, never shown)."""
    try:
        image = parse_data_url(url, max_bytes=MAX_GENERATED_IMAGE_BYTES)
    except NotAnImageError as exc:
        logger.warning("model image dropped", extra={"reason": str(exc)[:80]})
        return None
    attachment_id, key = put_inline_image(store, user_id, image)
    return GeneratedImage(attachment_id=attachment_id, key=key, media_type=image.media_type, size=len(image.data))


def record_generated_images(
    conn: Connection, user_id: UUID, conversation_id: UUID, message_id: UUID, images: Sequence[GeneratedImage]
) -> None:
    for index, image in enumerate(images):
        extension = image.media_type.removeprefix("image/")
        repo.insert_attachment(
            conn,
            attachment_id=image.attachment_id,
            user_id=user_id,
            filename=f"generated-{index + 1}.{extension}",
            media_type=image.media_type,
            size=image.size,
            s3_key=image.key,
            status="uploaded",
            conversation_id=conversation_id,
            message_id=message_id,
        )
