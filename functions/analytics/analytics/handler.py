"""Lambda entry point of AnalyticsFunction (EventBridge Scheduler, every 5 minutes). Wiring only: one run of
`oneai.analytics.rollup` (the rollups of the days that changed, then a batch of questions), within the time
the invocation has; its report is the return value, one log line and EMF metrics. The event's content is not
read (every run does the same); `detail.max_days` may lower the run's bound (a manual run)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oneai.analytics import rollup
from oneai.config import get_settings
from oneai.database import get_database
from oneai.logging import log_invocation, logger
from oneai.observability import MetricUnit, metrics, tracer
from oneai.runtime import freeze_startup_objects

freeze_startup_objects()


@metrics.log_metrics
@tracer.capture_lambda_handler
@log_invocation()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event, dict) else None
    max_days = detail.get("max_days") if isinstance(detail, dict) else None
    bound = max_days if isinstance(max_days, int) and not isinstance(max_days, bool) and max_days > 0 else None

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    report = rollup.run(
        get_database(), get_settings(), time_left=time_left, max_days=bound or rollup.DEFAULT_MAX_DAYS
    )
    logger.info("analytics rollup finished", extra={**report.as_dict(), "execution_id": event.get("id")})
    metrics.add_metric(name="AnalyticsDaysRecomputed", unit=MetricUnit.Count, value=report.days_recomputed)
    metrics.add_metric(name="AnalyticsDaysRemaining", unit=MetricUnit.Count, value=report.days_remaining)
    metrics.add_metric(name="AnalyticsQuestionsAdded", unit=MetricUnit.Count, value=report.questions_added)
    return report.as_dict()
