"""Routes of the docs function. The guide is public (anonymous, read-only transactions); feedback is
stored as its signed-in author (under RLS) or anonymously."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from oneai.guide import service
from oneai.guide.models import FeedbackReceipt, FeedbackRequest, GuidePage, SearchQuery, SearchResults
from oneai.web import Db, OptionalPrincipal
from oneai.web.deps import source_rate_check

guide = APIRouter(prefix="/docs", tags=["user guide"])
feedback = APIRouter(prefix="/docs", tags=["feedback"])

Slug = Annotated[str, Path(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=100)]


@guide.get("/search", summary="Search the user guide (public); best match first, empty when nothing matches")
def search_guide(db: Db, query: Annotated[SearchQuery, Query()]) -> SearchResults:
    with db.anon_transaction() as conn:
        return service.search(conn, query)


@guide.get("/{slug}", summary="One page of the user guide as markdown (public)")
def get_guide_page(db: Db, slug: Slug) -> GuidePage:
    with db.anon_transaction() as conn:
        return service.get_page(conn, slug)


@feedback.post(
    "/feedback",
    status_code=status.HTTP_201_CREATED,
    summary="Was this page helpful? Anonymous, or as you with a valid token (an invalid one is 401)",
)
def leave_feedback(
    request: Request, db: Db, principal: OptionalPrincipal, body: FeedbackRequest
) -> FeedbackReceipt:
    # Rate limited in the transaction's first round trip: signed in, the caller's own bucket (the
    # principal carries its check); anonymous, the bucket of the caller's source address.
    if principal is None:
        with db.anon_transaction(source_rate_check(request, "feedback")) as conn:
            return service.submit_feedback(conn, body, user_id=None)
    with db.user_transaction(principal) as conn:
        return service.submit_feedback(conn, body, user_id=principal.user_id)
