"""The widget's public routes: what they take and answer (API.md "The embeddable widget")."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from oneai.timestamps import UtcTime

VISITOR_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DEFAULT_COLOR = "#2563eb"
MAX_SUGGESTED = 6

VisitorId = Annotated[str, StringConstraints(pattern=VISITOR_ID_PATTERN)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]


class WidgetSettings(BaseModel):
    """What the script shows: the chatbot's `widget` settings (never `allowed_origins`), each one checked
    again on the way out so the script never gets a value it cannot use as it is."""

    public_id: str
    title: str
    greeting: str | None
    color: str = Field(description="#rgb or #rrggbb")
    position: Literal["bottom-right", "bottom-left"]
    avatar_url: str | None = Field(description="an http(s) URL, or null")
    suggested_questions: list[str]

    @classmethod
    def from_stored(cls, public_id: str, name: str, widget: dict[str, Any]) -> WidgetSettings:
        def text(key: str, limit: int) -> str | None:
            value = widget.get(key)
            return value.strip()[:limit] or None if isinstance(value, str) else None

        color = widget.get("color")
        avatar = text("avatar_url", 2048)
        questions = widget.get("suggested_questions")
        return cls(
            public_id=public_id,
            title=text("title", 100) or name,
            greeting=text("greeting", 1000),
            color=color if isinstance(color, str) and COLOR.match(color) else DEFAULT_COLOR,
            position="bottom-left" if widget.get("position") == "bottom-left" else "bottom-right",
            avatar_url=avatar if avatar and re.match(r"^https?://", avatar, re.IGNORECASE) else None,
            suggested_questions=[q.strip()[:200] for q in questions if isinstance(q, str) and q.strip()][
                :MAX_SUGGESTED
            ]
            if isinstance(questions, list)
            else [],
        )


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor_id: VisitorId = Field(
        description="the random id the widget keeps for this visitor (16-64 of A-Z a-z 0-9 _ -)"
    )
    page_url: Url
    referrer: Annotated[str, StringConstraints(max_length=2048)] | None = None
    locale: Annotated[str, StringConstraints(strip_whitespace=True, max_length=35)] | None = None
    conversation_id: UUID | None = Field(
        default=None, description="the conversation to resume, if it is this visitor's"
    )


class SessionAnswer(BaseModel):
    session_token: str = Field(description="send as `Authorization: Bearer` from the same origin")
    expires_at: UtcTime
    conversation_id: UUID | None = Field(description="the resumed conversation, or null")


class Source(BaseModel):
    """A passage a reply used, as saved with it (API.md "shared rules": `sources`)."""

    model_config = ConfigDict(extra="ignore")

    chunk_id: str | None = None
    document_id: str | None = None
    filename: str | None = None
    page: int | None = None
    chunk_index: int | None = None
    score: float | None = None


class VisitorMessage(BaseModel):
    id: UUID
    role: Literal["user", "assistant"]
    content: str
    status: Literal["complete", "incomplete", "error"]
    sources: list[Source]
    created_at: UtcTime


class VisitorConversation(BaseModel):
    conversation_id: UUID
    rating: int | None
    messages: list[VisitorMessage]


class RatingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class RatingAnswer(BaseModel):
    conversation_id: UUID
    score: int
    comment: str | None
    rated_at: UtcTime
