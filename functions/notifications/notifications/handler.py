"""Lambda entry points of the notifications code (two functions of template.yaml, one package). Wiring only.
- `lambda_handler` (NotificationsFunction): SQS batches (EventBridge rule -> the notifications queue); each
  record's body is one EventBridge event, whose email is sent at most once (`oneai.notifications.service`).
  Partial batch failure reporting (`ReportBatchItemFailures`, `oneai.sqs_batch`): only the records that
  failed are retried, and after the queue's maxReceiveCount they go to the dead-letter queue.
- `usage_summary_handler` (UsageSummaryFunction): the monthly schedule (EventBridge Scheduler, the 1st at
  00:00 UTC) emits one `UsageSummaryDue` event per user with usage last month
  (`oneai.notifications.summary`); `detail.month` (`YYYY-MM`) and `detail.after` (a user id) are optional,
  to re-run a month or to go on after an early stop. A separate function because a sweep needs minutes
  while the queue's visibility timeout (6x the consumer's timeout) should stay short.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.config import get_settings
from oneai.database import get_database
from oneai.events import get_publisher
from oneai.logging import log_invocation, logger
from oneai.notifications.mail import mailer_for
from oneai.notifications.service import Notifier
from oneai.notifications.summary import BEFORE_EVERY_USER, Month, emit_usage_summaries
from oneai.observability import MetricUnit, metrics, tracer
from oneai.runtime import freeze_startup_objects
from oneai.sqs_batch import SqsMessage, process_sqs_batch

_notifier: tuple[Any, Notifier] | None = None

freeze_startup_objects()


def notifier() -> Notifier:
    """One per container (its SES client is reused), rebuilt when the settings change (tests)."""
    global _notifier
    settings = get_settings()
    if _notifier is None or _notifier[0] is not settings:
        mailer = mailer_for(settings)
        _notifier = (settings, Notifier(get_database(), mailer, sender=mailer.sender))
    return _notifier[1]


def record_handler(record: SqsMessage) -> None:
    try:
        delivery = notifier().deliver_event(json.loads(record.body))
    except Exception as exc:  # reported as this record's failure; the message says what, never a body
        logger.exception(
            "notification failed", extra={"message_id": record.message_id, "error_type": type(exc).__name__}
        )
        raise
    logger.debug("record done", extra={"message_id": record.message_id, **delivery.log_fields()})


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def usage_summary_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = event.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    month = Month.parse(detail["month"]) if detail.get("month") else Month.before(datetime.now(UTC))
    after = UUID(str(detail["after"])) if detail.get("after") else BEFORE_EVERY_USER

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    report = emit_usage_summaries(get_database(), get_publisher(), month, after=after, time_left=time_left)
    logger.info("usage summary sweep finished", extra={**report.as_dict(), "execution_id": event.get("id")})
    metrics.add_metric(name="UsageSummariesPublished", unit=MetricUnit.Count, value=report.published)
    return report.as_dict()


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="NotificationRecords", unit=MetricUnit.Count, value=len(event.get("Records") or []))
    # A batch whose every record failed is answered like any other (all of them listed), not raised: each
    # record is retried on its own terms, and records that keep failing reach the dead-letter queue (alarmed).
    return process_sqs_batch(event, record_handler)
