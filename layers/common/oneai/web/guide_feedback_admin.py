"""`GET /admin/docs/feedback`: the user guide's feedback per page, for the admin function to mount.

The admin function owns who is an admin; this router takes its admin dependency, so there is one admin
check in the product:

    from oneai.web.guide_feedback_admin import guide_feedback_router
    create_app(..., routers=[..., guide_feedback_router(require_admin)])

Feedback of every reader is read in a service transaction, on purpose, after that check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from oneai.guide import service
from oneai.guide.models import FeedbackSummary
from oneai.web.deps import Db

MAX_COMMENTS_PER_PAGE = 50


def guide_feedback_router(require_admin: Callable[..., Any]) -> APIRouter:
    router = APIRouter(prefix="/admin/docs", tags=["admin: user guide"], dependencies=[Depends(require_admin)])

    @router.get("/feedback", summary="Per guide page: helpful / not helpful counts and the latest comments")
    def guide_feedback_summary(
        db: Db,
        comments: Annotated[int, Query(ge=0, le=MAX_COMMENTS_PER_PAGE, description="Latest comments per page")] = (
            service.DEFAULT_COMMENTS_PER_PAGE
        ),
    ) -> FeedbackSummary:
        with db.service_transaction() as conn:
            return service.feedback_summary(conn, comments_per_page=comments)

    return router
