"""Lambda entry point: API Gateway (REST, v1 events) -> Mangum -> FastAPI. Wiring only."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from billing.app import build_app
from oneai.logging import logger
from oneai.observability import tracer
from oneai.runtime import freeze_startup_objects

app = build_app()
_asgi_handler = Mangum(app, lifespan="off")
freeze_startup_objects()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold user data
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _asgi_handler(event, context)  # type: ignore[no-any-return]
