"""Business analytics over a range of UTC days."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oneai.admin.analytics import analytics
from oneai.admin.models import Analytics, AnalyticsQuery
from oneai.web import AdminPrincipal, Db

router = APIRouter(prefix="/admin", tags=["analytics"])


@router.get(
    "/analytics",
    summary="Users, usage per day and model, revenue, margin by tier and a 30-day forecast",
    response_model_by_alias=True,
)
def get_analytics(admin: AdminPrincipal, db: Db, query: Annotated[AnalyticsQuery, Query()]) -> Analytics:
    return analytics(db, admin, query)
