"""The admin app, built by the shared factory. One router per resource: add a router to ROUTERS (and its
routes to template.yaml) to extend it."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, FastAPI

from admin.routes import analytics, audit_log, subscriptions, users, workspaces
from oneai.web import create_app
from oneai.web.deps import current_admin
from oneai.web.guide_feedback_admin import guide_feedback_router

ROUTERS: Final[tuple[APIRouter, ...]] = (
    users.router,
    subscriptions.router,
    workspaces.router,
    analytics.router,
    audit_log.router,
    guide_feedback_router(current_admin),
)


def build_app() -> FastAPI:
    return create_app(
        title="OneAI admin",
        prefix="/admin",
        description=(
            "Run the business: users, suspensions, quota overrides, subscription sync, workspaces and their "
            "suspension, analytics, the user guide's feedback and the audit log. Only callers whose access token has "
            '`app_metadata.role = "admin"`; everyone else gets 403. '
            "Every write is recorded in the append-only audit log."
        ),
        routers=ROUTERS,
    )
