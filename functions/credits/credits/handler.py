"""Lambda entry point of the credits function: API Gateway -> Mangum -> FastAPI. Wiring only."""

from __future__ import annotations

from credits.app import build_app
from oneai.runtime import freeze_startup_objects
from oneai.web.lambda_entry import api_gateway_handler

app = build_app()
lambda_handler = api_gateway_handler(app)
freeze_startup_objects()
