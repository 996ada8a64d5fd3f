"""Typed shapes of the inbox (API.md "Chatbot conversations (the inbox)"): the list's items and filters, the
detail, the triage update, the bulk delete, the export's formats and the stats."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from oneai.timestamps import IsoDateTime, UtcTime, require_ordered
from oneai.widget.models import Source

MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_NOTES_CHARS = 5000
MAX_SEARCH_CHARS = 200
MAX_BULK_IDS = 100
MAX_EXPORT_IDS = 1000

Status = Literal["open", "resolved", "archived"]
ExportFormat = Literal["json", "csv", "md"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_CHARS)]


class Visitor(BaseModel):
    """What the widget said of the visitor (never the source address, nor its hash)."""

    id: str = Field(description="the widget's visitor id")
    page_url: str | None
    referrer: str | None
    user_agent: str | None
    locale: str | None


class Match(BaseModel):
    """Where a search matched: the newest matching message and a snippet of it."""

    message_id: UUID
    snippet: str


class InboxItem(BaseModel):
    id: UUID
    visitor: Visitor
    started_at: UtcTime
    last_message_at: UtcTime | None
    messages: int
    rating: int | None
    status: Status
    tags: list[str]
    match: Match | None = Field(default=None, description="with `q`: where it matched")


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class InboxQuery(BaseModel):
    """`?from&to&status&rating&q&limit&cursor` of the list: `from`/`to` bound the conversation's start
    (`from` included, `to` excluded; a date alone is its 00:00 UTC)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: IsoDateTime | None = Field(default=None, alias="from", description="started at or after")
    to: IsoDateTime | None = Field(default=None, description="started before")
    status: Status | None = None
    rating: int | None = Field(default=None, ge=1, le=5, description="the visitor's rating (1-5)")
    q: str | None = Field(default=None, max_length=MAX_SEARCH_CHARS, description="full text of the messages")
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=512)

    @field_validator("to", mode="after")
    @classmethod
    def _range(cls, to: datetime | None, info: ValidationInfo) -> datetime | None:
        require_ordered(info.data.get("from_"), to)
        return to


class InboxMessage(BaseModel):
    id: UUID
    role: Literal["user", "assistant"]
    content: str
    status: Literal["complete", "incomplete", "error"]
    model_id: str | None
    sources: list[Source]
    created_at: UtcTime


class Rating(BaseModel):
    score: int
    comment: str | None
    rated_at: UtcTime


class InboxConversation(BaseModel):
    id: UUID
    chatbot_id: UUID | None
    visitor: Visitor
    started_at: UtcTime
    last_message_at: UtcTime | None
    updated_at: UtcTime
    status: Status
    tags: list[str]
    notes: str | None
    rating: Rating | None
    messages: list[InboxMessage]


class InboxUpdate(BaseModel):
    """The triage: any of notes, tags, status (`null` notes clear them)."""

    model_config = ConfigDict(extra="forbid")

    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    status: Status | None = None

    @field_validator("tags", mode="after")
    @classmethod
    def _distinct(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            raise ValueError("tags may be [] but not null")
        return list(dict.fromkeys(tags))

    @field_validator("status", mode="after")
    @classmethod
    def _not_null(cls, status: str | None) -> str:
        if status is None:
            raise ValueError("status is open, resolved or archived")
        return status


class BulkDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class BulkDeleted(BaseModel):
    deleted: int = Field(description="how many of the ids were this chatbot's conversations, now deleted")


class StatsDay(BaseModel):
    date: date
    conversations: int
    messages: int
    avg_rating: float | None


class InboxStats(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    total: int = Field(description="conversations started in the range")
    avg_messages: float | None = Field(description="messages per conversation started in the range")
    avg_rating: float | None = Field(description="average rating of those rated")
    by_day: list[StatsDay]
