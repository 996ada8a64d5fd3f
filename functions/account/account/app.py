"""The account app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from account.routes import account, api_keys, notifications, profile, quota
from oneai.web import create_app


def build_app() -> FastAPI:
    return create_app(
        title="OneAI account",
        prefix="/user",
        description=(
            "Your quotas, a quota check, usage statistics (JSON or CSV), your profile, your API keys, the export"
            " of your data, the erasure of your account, and the public one-click unsubscribe link of"
            " notification emails."
        ),
        routers=[quota, profile, api_keys, account, notifications],
    )
