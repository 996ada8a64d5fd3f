"""The billing app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from billing.routes import plans, subscription
from oneai.web import create_app


def build_app() -> FastAPI:
    return create_app(
        title="OneAI billing",
        prefix="/subscription",
        description=(
            "Plans (public), Razorpay subscriptions for Checkout and their verification, cancel, tier changes,"
            " invoices and your current subscription with its history. Your tier is granted by Razorpay's"
            " webhooks, not by these routes."
        ),
        routers=[plans, subscription],
    )
