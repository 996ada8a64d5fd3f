"""The Lambda entry point of every buffered FastAPI function: API Gateway (REST, v1 events) -> Mangum ->
the app, with the request's correlation id in every log line and an X-Ray segment per invocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from oneai.logging import log_invocation
from oneai.observability import tracer

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def api_gateway_handler(app: FastAPI) -> LambdaHandler:
    asgi_handler = Mangum(app, lifespan="off")

    @log_invocation(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler(capture_response=False)  # responses hold user data
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return asgi_handler(event, context)  # type: ignore[arg-type]  # two LambdaContext protocols, one object

    return cast(LambdaHandler, lambda_handler)  # Powertools' decorators are typed loosely
