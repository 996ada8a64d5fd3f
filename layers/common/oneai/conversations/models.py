"""Typed shapes of conversations and messages: rows out of the data layer, inputs from the API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oneai.attachments.models import AttachmentRef
from oneai.pagination import DEFAULT_LIMIT, MAX_LIMIT
from oneai.timestamps import IsoDateTime, UtcTime, require_ordered

MAX_TITLE_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_MESSAGE_CHARS = 100_000
MAX_SEARCH_CHARS = 200

Role = Literal["user", "assistant", "system"]
MessageStatus = Literal["complete", "incomplete", "error"]
RevisionType = Literal["user_edit", "regeneration"]
ExportFormat = Literal["json", "markdown", "txt"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)]


class Conversation(BaseModel):
    id: UUID
    title: str | None
    created_at: UtcTime
    updated_at: UtcTime
    last_message_at: UtcTime | None
    metadata: dict[str, Any]


class MessageSource(BaseModel):
    """A passage a chatbot's reply used (API.md "shared rules": `sources`)."""

    chunk_id: UUID
    document_id: UUID
    filename: str
    page: int | None
    chunk_index: int
    score: float


class ConversationMatch(BaseModel):
    """Where a search (`GET /conversations?q`) matched: the title, or a message's text. A matching
    message (the newest of the current branch) is named whichever matched, with a snippet of it."""

    field: Literal["title", "message"]
    message_id: UUID | None = None
    snippet: str | None = None


class ConversationListItem(Conversation):
    match: ConversationMatch | None = Field(default=None, description="with `q`: where it matched")


class Message(BaseModel):
    id: UUID
    conversation_id: UUID
    role: Role
    content: str
    model_id: str
    tokens_used: int | None
    sequence_number: int
    revision_number: int
    revision_type: RevisionType | None
    original_message_id: UUID | None
    parent_message_id: UUID | None
    is_latest: bool
    status: MessageStatus
    created_at: UtcTime
    attachments: list[AttachmentRef] = Field(default_factory=list)
    # A chatbot's reply: the passages it used, in the order they were given (null on other messages).
    sources: list[MessageSource] | None = None

    @field_validator("attachments", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class ConversationWithMessages(Conversation):
    messages: list[Message]


def _check_metadata_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    metadata: dict[str, Any] | None = None

    _metadata_size = field_validator("metadata")(_check_metadata_size)


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    title: Title | None = None
    metadata: dict[str, Any] | None = None

    _metadata_size = field_validator("metadata")(_check_metadata_size)

    @model_validator(mode="after")
    def _something_to_change(self) -> ConversationUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, metadata")
        return self


class NewMessage(BaseModel):
    """A message to write at the tip of a branch (used by the chat turn and by tests)."""

    # Chosen up front when the id must be known before the row exists (a streamed reply announces it).
    id: UUID | None = None
    role: Role
    # Unbounded here: the user's own text is held to MAX_MESSAGE_CHARS where it enters (413), and a model's
    # reply is whatever the model wrote; refusing to save a long reply would lose it after it streamed.
    content: str
    model_id: str = Field(min_length=1, max_length=200)
    status: MessageStatus = "complete"
    tokens_used: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)


class HistoryQuery(BaseModel):
    """`GET /chat/history`: messages created in [`from`, `to`), newest first, a page at a time."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    q: str | None = Field(default=None, max_length=MAX_SEARCH_CHARS, description="full-text query")
    model: str | None = Field(default=None, max_length=200)
    from_: IsoDateTime | None = Field(default=None, alias="from", description="inclusive")
    to: IsoDateTime | None = Field(default=None, description="exclusive; must be later than from")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size")
    cursor: str | None = Field(default=None, max_length=512, description="next_cursor of the previous page")

    @field_validator("to")
    @classmethod
    def _after_from(cls, to: datetime | None, info: ValidationInfo) -> datetime | None:
        require_ordered(info.data.get("from_"), to)
        return to


class HistoryHit(BaseModel):
    conversation_id: UUID
    message_id: UUID
    role: Role
    snippet: str
    model: str
    created_at: UtcTime


class SharedAttachment(BaseModel):
    """An attachment of a shared message: `url` is under the share link, and works only while it lives."""

    id: UUID
    media_type: str
    size: int
    url: str


class SharedMessage(BaseModel):
    role: Role
    content: str
    model_id: str
    sequence_number: int
    created_at: UtcTime
    attachments: list[SharedAttachment] = Field(default_factory=list)


class SharedSnapshot(BaseModel):
    """What `GET /shared/{token}` shows: the branch as it was when shared, without private metadata. Every
    key is declared (none passes through as stored), so each time is written with `Z`."""

    title: str | None = None
    created_at: UtcTime | None = None
    shared_at: UtcTime = Field(description="when the link was made")
    messages: list[SharedMessage] = Field(default_factory=list)


class ShareLink(BaseModel):
    token: str
    url: str


class Export(BaseModel):
    filename: str
    media_type: str
    body: bytes
