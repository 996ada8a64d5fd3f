"""The credits app, built by the shared factory."""

from __future__ import annotations

from fastapi import FastAPI

from credits.provider_key_routes import provider_keys, workspace_keys
from credits.routes import router
from oneai.web import create_app


def build_app() -> FastAPI:
    return create_app(
        title="OneAI credits and provider keys",
        prefix="/credits",
        description=(
            "A workspace's credits (INR): the balance, a purchase through a Razorpay Order (credited once when"
            " Razorpay's webhook says it is paid), the ledger of transactions, and the usage it paid for; and the"
            " workspace's own provider keys (bring your own: stored sealed, shown masked, tested), which pay for"
            " its replies instead of its credits."
        ),
        routers=[router, workspace_keys, provider_keys],
    )
