"""Lambda entry point of WebhookDeliveryFunction (issue 28 item 3, outbound webhooks). Wiring only.
- SQS batches from the webhook queue: EventBridge events of the webhook rule (DocumentProcessed,
  DocumentFailed, ConversationRated, CreditsLow) -> one delivery per subscribed endpoint, attempted at
  once; `{"delivery_id","attempt"}` messages -> a delivery's next attempt after its backoff
  (`oneai.outbound_webhooks.delivery`). Partial batch failure reporting (`oneai.sqs_batch`): a record
  that raised (the database or KMS unavailable) comes back after the visibility timeout.
- The schedule (hourly): `sweep_overdue` sends again the attempts whose queue message was lost.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.config import get_settings
from oneai.database import get_database
from oneai.logging import log_invocation, logger
from oneai.observability import MetricUnit, metrics, tracer
from oneai.outbound_webhooks.delivery import Deliverer, MalformedMessageError, handle_message, sweep_overdue
from oneai.runtime import freeze_startup_objects
from oneai.sqs_batch import SqsMessage, process_sqs_batch

freeze_startup_objects()


def record_handler(record: SqsMessage) -> None:
    try:
        handle_message(Deliverer(get_database(), get_settings()), record.body)
    except MalformedMessageError as exc:  # retrying cannot help: logged and dropped
        logger.error("webhook message malformed", extra={"message_id": record.message_id, "error": str(exc)})
    except Exception as exc:  # this record's failure, retried by SQS
        logger.warning(
            "webhook record failed", extra={"message_id": record.message_id, "error_type": type(exc).__name__}
        )
        raise


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return process_sqs_batch(event, record_handler)
    sent = sweep_overdue(get_database())
    metrics.add_metric(name="WebhookAttemptsRequeued", unit=MetricUnit.Count, value=sent)
    return {"requeued": sent}
