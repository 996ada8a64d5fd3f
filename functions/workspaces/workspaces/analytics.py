"""The workspace's analytics route (API.md "Analytics"; docs/api/analytics.md): opens the caller's
transaction and calls `oneai.analytics.service`; CSV with `Accept: text/csv`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from oneai.analytics import service
from oneai.analytics.models import Analytics, AnalyticsQuery
from oneai.web import CurrentPrincipal, Db
from oneai.web.ids import PathId
from workspaces.routes import refused

analytics = APIRouter(prefix="/workspaces/{workspace_id}/analytics", tags=["analytics"])


@analytics.get(
    "",
    summary="Messages, conversations, response times, satisfaction and top questions over UTC days (members;"
    " CSV with Accept: text/csv)",
    response_model=Analytics,
    responses={
        200: {"content": {"text/csv": {}}},
        **refused(404, "NOT_FOUND: not a workspace of yours, or chatbot_id is not one of its chatbots"),
        **refused(422, "VALIDATION_ERROR: from/to not dates, to before from, or more than 366 days"),
    },
)
def get_analytics(
    principal: CurrentPrincipal,
    db: Db,
    workspace_id: PathId,
    query: Annotated[AnalyticsQuery, Query()],
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Analytics | Response:
    with db.user_transaction(principal) as conn:
        report = service.analytics(conn, workspace_id, query)
    if accept is None or "text/csv" not in accept.lower():
        return report
    filename = f"analytics-{workspace_id}-{report.from_}-{report.to}.csv"
    return Response(
        service.analytics_csv(report).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
