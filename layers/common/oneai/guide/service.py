"""The docs API's services: search the guide, read a page, leave feedback, summarise feedback (admins)."""

from __future__ import annotations

import html
import uuid
from uuid import UUID

from oneai.db import guide as guide_db
from oneai.db.connection import Connection
from oneai.errors import NotFoundError
from oneai.guide.models import (
    FeedbackComment,
    FeedbackReceipt,
    FeedbackRequest,
    FeedbackSummary,
    GuidePage,
    PageFeedback,
    SearchQuery,
    SearchResult,
    SearchResults,
)
from oneai.pagination import decode_cursor, encode_cursor

# How close a misspelt query must come to a title's words (0..1, trigram overlap) to find that page when
# full text finds nothing. 0.3 is pg_trgm's default similarity threshold.
MIN_TITLE_SIMILARITY = 0.3
# A query word the guide does not hold is corrected to the closest word it does hold: from 5 letters within
# one edit, from 9 letters within two (a swap of neighbouring letters is one edit). A word the guide holds
# is never corrected. Shorter limits would also "correct" real words the guide happens not to use (4
# letters: a third of them, like data -> date): docs/api/documentation.md gives the measured rates.
CORRECT_ONE_EDIT_FROM = 5
CORRECT_TWO_EDITS_FROM = 9
DEFAULT_COMMENTS_PER_PAGE = 5


MAX_OFFSET = 10_000  # far beyond any guide; keeps a forged cursor inside PostgreSQL's integers


def _offset(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFSET:
        raise ValueError("not an offset of this search")
    return value


def _snippet(marked: str) -> str:
    text = " ".join(marked.split())  # one line, as the markdown's line breaks mean nothing here
    if len(marked) >= guide_db.LEAD_CHARS and guide_db.MARK_START not in text:
        text = text.rsplit(" ", 1)[0] + " …"  # a page's opening words, cut at a word
    escaped = html.escape(text, quote=False)
    return escaped.replace(guide_db.MARK_START, "<mark>").replace(guide_db.MARK_STOP, "</mark>")


def search(conn: Connection, query: SearchQuery) -> SearchResults:
    """The best matching pages first; an empty list when nothing matches. Cursor: an offset in the ranking.
    Misspelt words are corrected first, and the answer says what was searched then."""
    offset = decode_cursor(query.cursor, {"offset": _offset})["offset"] if query.cursor else 0
    answer = guide_db.search_pages(
        conn,
        query.q,
        offset=offset,
        limit=query.limit + 1,
        min_title_similarity=MIN_TITLE_SIMILARITY,
        one_edit_from=CORRECT_ONE_EDIT_FROM,
        two_edits_from=CORRECT_TWO_EDITS_FROM,
    )
    rows = answer.rows
    items = [SearchResult(slug=r.slug, title=r.title, snippet=_snippet(r.snippet)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return SearchResults(
        items=items,
        next_cursor=encode_cursor({"offset": offset + query.limit}) if more else None,
        corrected_query=answer.corrected_query,
    )


def get_page(conn: Connection, slug: str) -> GuidePage:
    row = guide_db.get_page(conn, slug)
    if row is None:
        raise NotFoundError("No guide page has this slug")
    return GuidePage(slug=row.slug, title=row.title, markdown=row.markdown, updated_at=row.updated_at)


def submit_feedback(conn: Connection, body: FeedbackRequest, *, user_id: UUID | None) -> FeedbackReceipt:
    """Store one reader's verdict on a page, as `user_id` (in that user's transaction) or anonymously."""
    feedback_id = uuid.uuid4()
    stored = guide_db.insert_feedback(
        conn, feedback_id=feedback_id, slug=body.slug, user_id=user_id, helpful=body.helpful, comment=body.comment
    )
    if not stored:
        raise NotFoundError("No guide page has this slug")
    return FeedbackReceipt(
        id=feedback_id, slug=body.slug, helpful=body.helpful, comment=body.comment, signed_in=user_id is not None
    )


def feedback_summary(conn: Connection, *, comments_per_page: int = DEFAULT_COMMENTS_PER_PAGE) -> FeedbackSummary:
    """Per page: helpful and not-helpful counts and the latest comments; least helpful pages first.
    Reads every reader's feedback, so it runs in a service transaction behind an admin check."""
    rows = guide_db.feedback_summary(conn, comments_per_page=comments_per_page)
    return FeedbackSummary(
        items=[
            PageFeedback(
                slug=r.slug,
                title=r.title,
                helpful=r.helpful,
                not_helpful=r.not_helpful,
                total=r.helpful + r.not_helpful,
                last_feedback_at=r.last_feedback_at,
                latest_comments=[FeedbackComment(**c.model_dump()) for c in r.latest_comments],
            )
            for r in rows
        ]
    )
