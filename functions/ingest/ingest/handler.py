"""Lambda entry point of IngestFunction (issue 24, the knowledge ingest). Wiring only.
- SQS batches from the document uploads queue: S3 `ObjectCreated` notifications for `knowledge/` keys,
  each admitted by `oneai.knowledge.intake.admit_uploads` (its documents `queued`, one `{"storage_key"}`
  message a file sent to the ingest queue).
- SQS batches from the ingest queue: `{"storage_key"}` (a landed file) and `{"document_id"}` messages
  (reprocess, the sweep's requeue); each record processed by `oneai.knowledge.ingest.Ingestor`.
  Partial batch failure reporting (`oneai.sqs_batch`): a record whose embedding must be retried (or whose
  notice could not be passed on) is listed and comes back after the visibility timeout; after the queue's
  maxReceiveCount it would go to the dead-letter queue (its document is failed on that last delivery).
- The schedule (EventBridge Scheduler, every 15 minutes): `sweep_stuck_documents` requeues or fails the
  documents whose worker died and fails the uploads that never completed. In this function because it
  shares the ingest's settings (attempts, staleness) and its permission to send to the queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.attachments.storage import get_object_store
from oneai.config import get_settings
from oneai.database import get_database
from oneai.knowledge.ingest import Ingestor, MalformedMessageError, sweep_stuck_documents
from oneai.knowledge.intake import admit_uploads, is_upload_notice
from oneai.logging import log_invocation, logger
from oneai.observability import MetricUnit, metrics, tracer
from oneai.runtime import freeze_startup_objects
from oneai.sqs_batch import SqsMessage, process_sqs_batch

freeze_startup_objects()


def record_handler(record: SqsMessage) -> None:
    try:
        if is_upload_notice(record.body):  # from the document uploads queue: mark queued, pass on
            landed = admit_uploads(get_database(), record.body)
            metrics.add_metric(name="DocumentsLanded", unit=MetricUnit.Count, value=len(landed))
            return
        ingestor = Ingestor(get_database(), get_object_store(), get_settings())
        outcomes = ingestor.ingest_message(record.body, receive_count=record.receive_count)
    except MalformedMessageError as exc:  # retrying cannot help: logged and dropped
        logger.error("ingest message malformed", extra={"message_id": record.message_id, "error": str(exc)})
        return
    except Exception as exc:  # this record's failure, retried by SQS
        logger.warning(
            "ingest record failed", extra={"message_id": record.message_id, "error_type": type(exc).__name__}
        )
        raise
    for outcome in outcomes:
        metrics.add_metric(name=f"Documents{outcome.result.value.title()}", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return process_sqs_batch(event, record_handler)
    report = sweep_stuck_documents(get_database(), get_settings())
    metrics.add_metric(name="DocumentsRequeued", unit=MetricUnit.Count, value=report["requeued"])
    return report
