"""Typed shapes of attachments: what the API takes and answers, and the rows of the data layer."""

from __future__ import annotations

from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from oneai.config import get_settings
from oneai.timestamps import UtcTime

# The images every model that reads images takes (API.md "Attachments and images").
MediaType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]
ACCEPTED_MEDIA_TYPES: Final[frozenset[str]] = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
AttachmentStatus = Literal["pending", "uploaded"]
Filename = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


def attachment_url(attachment_id: UUID) -> str:
    """The attachment's stable address: the content route of the API, which redirects to S3."""
    return f"{get_settings().public_api_url.rstrip('/')}/attachments/{attachment_id}/content"


def object_key(user_id: UUID, attachment_id: UUID) -> str:
    """Every object of a user lives under one prefix, so erasing an account deletes by prefix."""
    return f"{user_prefix(user_id)}{attachment_id}"


def user_prefix(user_id: UUID) -> str:
    return f"users/{user_id}/"


class AttachmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: Filename
    media_type: MediaType
    size: int = Field(gt=0, description="bytes; at most ONEAI_MAX_ATTACHMENT_BYTES")


class PresignedPost(BaseModel):
    url: str
    fields: dict[str, str]


class AttachmentUpload(BaseModel):
    """POST /attachments: where to upload (multipart `fields` + `file` to `upload.url`), until `expires_at`."""

    id: UUID
    url: str
    upload: PresignedPost
    expires_at: UtcTime


class AttachmentRow(BaseModel):
    id: UUID
    user_id: UUID
    conversation_id: UUID | None
    message_id: UUID | None
    filename: str
    media_type: MediaType
    size: int
    s3_key: str
    status: AttachmentStatus
    created_at: UtcTime


class Attachment(BaseModel):
    """GET /attachments/{id}."""

    id: UUID
    filename: str
    media_type: MediaType
    size: int
    url: str
    created_at: UtcTime

    @classmethod
    def of(cls, row: AttachmentRow) -> Attachment:
        return cls(
            id=row.id,
            filename=row.filename,
            media_type=row.media_type,
            size=row.size,
            url=attachment_url(row.id),
            created_at=row.created_at,
        )


class AttachmentRef(BaseModel):
    """An attachment as a message lists it."""

    id: UUID
    media_type: MediaType
    size: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return attachment_url(self.id)
