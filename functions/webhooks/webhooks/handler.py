"""Lambda entry point for Razorpay webhooks: a Function URL (AuthType NONE: the signature is the security)
sends a payload v2 event. Wiring only: take the raw body (base64-decoded when `isBase64Encoded`), the
`x-razorpay-signature` and `x-razorpay-event-id` headers, call `oneai.billing.webhooks.handle_webhook`,
map the result. No web framework: a webhook answers within Razorpay's 5 s, cold start included.

- 200 `{"status": "ok"}`: applied, a duplicate, or an event that is only recorded;
- 400 `BAD_REQUEST` in the error envelope: a bad or missing signature, or a body that is not JSON (nothing
  is written);
- 503 `UNAVAILABLE`: the database is down (nothing was written; Razorpay retries);
- anything unexpected raises: the invocation fails (the errors alarm sees it) and Razorpay retries.
Metrics (namespace OneAI, written at once, one per invocation): `WebhooksProcessed` by `event_type`,
`WebhooksRejected` by `reason`. Bodies, signatures and secrets are never logged.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.billing.razorpay_events import HANDLED_EVENTS
from oneai.billing.webhooks import InvalidSignatureError, handle_webhook
from oneai.config import get_settings
from oneai.database import get_database
from oneai.errors import NotFoundError, OneAIError, PayloadTooLargeError
from oneai.function_url import FunctionUrlRequest
from oneai.logging import log_invocation, logger
from oneai.observability import count_server_error, emit_metric, tracer
from oneai.runtime import freeze_startup_objects

SIGNATURE_HEADER: Final = "x-razorpay-signature"
EVENT_ID_HEADER: Final = "x-razorpay-event-id"
JSON_HEADERS: Final = {"content-type": "application/json"}

freeze_startup_objects()


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": dict(JSON_HEADERS), "body": json.dumps(body, separators=(",", ":"))}


def error_response(error: OneAIError) -> dict[str, Any]:
    count_server_error(error.status)
    return respond(
        error.status, {"error": {"code": error.code, "message": error.message, "details": error.details}}
    )


def metric_event_type(event_type: str) -> str:
    """The `event_type` dimension: Razorpay's event names we handle, `other` for the rest (bounded)."""
    return event_type if event_type in HANDLED_EVENTS else "other"


@log_invocation(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FunctionUrlRequest.from_event(event)
    if request.method != "POST":
        return error_response(NotFoundError("Webhooks are delivered with POST"))
    try:
        body = request.body()  # the exact bytes Razorpay signed
        if len(body) > get_settings().max_body_bytes:
            raise PayloadTooLargeError()
        result = handle_webhook(
            get_database(),
            body=body,
            signature=request.headers.get(SIGNATURE_HEADER),
            event_id=request.headers.get(EVENT_ID_HEADER),
        )
    except OneAIError as error:
        if error.status >= 500:
            logger.error("webhook not processed", extra={"error_code": error.code, "status": error.status})
        else:
            reason = "signature" if isinstance(error, InvalidSignatureError) else "request"
            logger.warning("webhook rejected", extra={"reason": reason, "error": error.message})
            emit_metric("WebhooksRejected", 1, reason=reason)
        return error_response(error)
    logger.info("webhook processed", extra=result.log_fields())
    emit_metric("WebhooksProcessed", 1, event_type=metric_event_type(result.event_type))
    return respond(200, {"status": "ok"})
