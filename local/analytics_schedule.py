"""The `make dev` stand-in for AnalyticsFunction's schedule (EventBridge Scheduler, every 5 minutes in AWS):
the function's `Handler` from template.yaml runs with the schedule's input (events/analytics/rollup.json)
on one daemon thread, every `ONEAI_LOCAL_ANALYTICS_SECONDS` (default 30: a local run should show new
conversations in the analytics soon; `0`: no schedule), the first run at start. A failed run is logged and
the next one comes as in AWS (the schedule does not retry)."""

from __future__ import annotations

import os
from typing import Final

from local.schedule import LocalSchedule, schedule_input
from local.template_routes import Function

__all__ = ["LocalAnalyticsSchedule", "analytics_function", "interval_from_environment", "schedule_input"]

ANALYTICS_HANDLER: Final = "analytics.handler.lambda_handler"
DEFAULT_INTERVAL_SECONDS: Final = 30.0


class LocalAnalyticsSchedule(LocalSchedule):
    label = "analytics function"


def analytics_function(functions: list[Function]) -> Function | None:
    return next((fn for fn in functions if fn.handler == ANALYTICS_HANDLER), None)


def interval_from_environment() -> float:
    value = os.environ.get("ONEAI_LOCAL_ANALYTICS_SECONDS")
    return float(value) if value else DEFAULT_INTERVAL_SECONDS
