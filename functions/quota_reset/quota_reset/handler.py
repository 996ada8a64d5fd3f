"""Lambda entry point for the quota-reset schedules (EventBridge Scheduler, one schedule per reset
frequency, each sending an EventBridge-shaped event with `detail.frequency`). Wiring only: parse the
event, run the sweep (`oneai.quota.sweep`), the grace-period expiry (`oneai.billing.grace`) and the purge of
workspaces deleted 30 days ago (`oneai.admin.workspace_purge`) and of deleted chatbots (`oneai.chatbots.purge`),
and the release of stale credit holds (`oneai.credits`), within the invocation's remaining time, report
them as one log line and three metrics (namespace OneAI, dimension
`frequency`, through the layer's module-level Powertools `metrics` and `tracer`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.admin.workspace_purge import purge_deleted_workspaces
from oneai.billing.grace import end_expired_grace_periods
from oneai.billing.period_end import end_finished_cancellations
from oneai.billing.replacement import sweep_replacements
from oneai.chatbots.purge import purge_deleted_chatbots
from oneai.credits.service import release_stale_reservations
from oneai.database import get_database
from oneai.logging import log_invocation, logger
from oneai.observability import MetricUnit, metrics, tracer
from oneai.quota.sweep import sweep_due_quotas
from oneai.quota.tiers import RESET_FREQUENCIES, ResetFrequency
from oneai.ratelimit import clear_idle_buckets
from oneai.runtime import freeze_startup_objects

freeze_startup_objects()


def frequency_of(event: dict[str, Any]) -> ResetFrequency:
    """The event's `detail.frequency`, or ValueError (logged) so that the failed invocation is retried
    and then lands in the dead-letter queue, where someone sees it."""
    detail = event.get("detail")
    frequency = detail.get("frequency") if isinstance(detail, dict) else None
    for known in RESET_FREQUENCIES:
        if frequency == known:
            return known
    logger.error(
        "unknown reset frequency in the schedule's event",
        extra={"frequency": frequency, "source": event.get("source"), "detail_type": event.get("detail-type")},
    )
    raise ValueError(f"unknown reset frequency {frequency!r}; known: {', '.join(RESET_FREQUENCIES)}")


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    frequency = frequency_of(event)

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    database = get_database()
    report = sweep_due_quotas(database, frequency, time_left=time_left)
    grace_periods_ended = end_expired_grace_periods(database, time_left=time_left)

    result = {**report.as_dict(), "grace_periods_ended": grace_periods_ended}
    result["cancellations_ended"] = end_finished_cancellations(database, time_left=time_left)
    # Plan changes by replacement: owed cancels of replaced subscriptions, abandoned replacements.
    result |= sweep_replacements(database).as_dict()
    result["rate_limit_buckets_cleared"] = clear_idle_buckets(database)
    # Workspaces deleted more than 30 days ago, with everything in them.
    result["workspaces_purged"] = purge_deleted_workspaces(database, time_left=time_left)
    # Chatbots deleted since the last run, with their conversations and documents unless kept.
    result["chatbots_purged"] = purge_deleted_chatbots(database, time_left=time_left)
    # Credit holds of replies whose function died before settling them (issue 26).
    result["credit_holds_released"] = release_stale_reservations(database)
    # the schedule's execution id and scheduled time say which run this was
    logger.info(
        "quota reset sweep finished",
        extra={**result, "execution_id": event.get("id"), "scheduled_time": event.get("time")},
    )
    metrics.add_dimension(name="frequency", value=frequency)
    metrics.add_metric(name="QuotaRowsReset", unit=MetricUnit.Count, value=report.reset)
    metrics.add_metric(name="QuotaRowsRemaining", unit=MetricUnit.Count, value=report.remaining)
    metrics.add_metric(name="GracePeriodsEnded", unit=MetricUnit.Count, value=grace_periods_ended)
    return result
