"""The `make dev` stand-in for AnalyticsFunction's schedule (EventBridge Scheduler, every 5 minutes in AWS):
the function's `Handler` from template.yaml runs with the schedule's input (events/analytics/rollup.json)
on one daemon thread, every `ONEAI_LOCAL_ANALYTICS_SECONDS` (default 30: a local run should show new
conversations in the analytics soon; `0`: no schedule), the first run at start. A failed run is logged and
the next one comes as in AWS (the schedule does not retry)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Final

from local.server import LambdaContext, LambdaHandler, load_handler
from local.template_routes import Function

logger = logging.getLogger("oneai.local")

ANALYTICS_HANDLER: Final = "analytics.handler.lambda_handler"
DEFAULT_INTERVAL_SECONDS: Final = 30.0


class LocalAnalyticsSchedule:
    def __init__(
        self, function: Function, event: dict[str, Any], interval: float, handler: LambdaHandler | None = None
    ) -> None:
        self._function = function
        self._event = event
        self._interval = interval
        self._handler = handler
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-analytics-schedule", daemon=True)

    def start(self) -> LocalAnalyticsSchedule:
        if self._handler is None:
            self._handler = load_handler(self._function)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=60)

    def run_once(self) -> dict[str, Any] | None:
        assert self._handler is not None
        context = LambdaContext(
            function_name=self._function.logical_id,
            memory_limit_in_mb=self._function.memory_mb,
            timeout_seconds=self._function.timeout_seconds,
        )
        try:
            answer: dict[str, Any] = self._handler(dict(self._event), context)
        except Exception:
            logger.exception("the analytics function failed")
            return None
        return answer

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.run_once()
            self._stopped.wait(self._interval)


def schedule_input(template: Mapping[str, Any], function: Function) -> dict[str, Any]:
    """What the function's schedule sends: its ScheduleV2 event's fixed `Input`."""
    properties = template["Resources"][function.logical_id]["Properties"]
    [schedule] = [e for e in properties["Events"].values() if e["Type"] == "ScheduleV2"]
    event: dict[str, Any] = json.loads(schedule["Properties"]["Input"])
    return event


def analytics_function(functions: list[Function]) -> Function | None:
    return next((fn for fn in functions if fn.handler == ANALYTICS_HANDLER), None)


def interval_from_environment() -> float:
    value = os.environ.get("ONEAI_LOCAL_ANALYTICS_SECONDS")
    return float(value) if value else DEFAULT_INTERVAL_SECONDS
