"""What the docs API takes and answers (API.md, "Documentation")."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from oneai.timestamps import UtcTime

MAX_QUERY_LENGTH = 200
MAX_COMMENT_LENGTH = 2000
DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 50


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL, nor UTF-8 a lone surrogate: bad input, not a failure on insert.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("must be valid Unicode text (no lone surrogates)")
    return value


def _surrounding_space_removed(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None  # a comment of only spaces is no comment


SafeText = Annotated[str, AfterValidator(_no_nul)]


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: SafeText = Field(min_length=1, max_length=MAX_QUERY_LENGTH, description="What to look for, in plain words")
    limit: int = Field(default=DEFAULT_SEARCH_LIMIT, ge=1, le=MAX_SEARCH_LIMIT)
    cursor: str | None = None


class SearchResult(BaseModel):
    slug: str
    title: str
    snippet: str = Field(
        description="Text around the matches, HTML-escaped, with each match inside <mark>...</mark>"
    )


class SearchResults(BaseModel):
    items: list[SearchResult]
    next_cursor: str | None
    corrected_query: str | None = Field(
        description="What was searched when a misspelt word of `q` was corrected (`quotta` -> `quota`); "
        "null when `q` was searched as typed",
    )


class GuidePage(BaseModel):
    slug: str
    title: str
    markdown: str
    updated_at: UtcTime


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: SafeText = Field(min_length=1, max_length=100)
    helpful: StrictBool
    comment: Annotated[
        SafeText | None,
        Field(max_length=MAX_COMMENT_LENGTH, description="Optional; surrounding spaces are removed"),
        AfterValidator(_surrounding_space_removed),
    ] = None


class FeedbackReceipt(BaseModel):
    id: UUID
    slug: str
    helpful: bool
    comment: str | None
    signed_in: bool = Field(description="Whether the feedback is attributed to your account")


class FeedbackComment(BaseModel):
    id: UUID
    helpful: bool
    comment: str
    user_id: UUID | None = Field(description="The author, or null for anonymous feedback")
    created_at: UtcTime


class PageFeedback(BaseModel):
    slug: str
    title: str | None = Field(description="null when the page has since left the guide")
    helpful: int
    not_helpful: int
    total: int
    last_feedback_at: UtcTime | None
    latest_comments: list[FeedbackComment]


class FeedbackSummary(BaseModel):
    items: list[PageFeedback]
