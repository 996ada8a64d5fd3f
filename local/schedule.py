"""A function's EventBridge schedule under `make dev`: the function's `Handler` from template.yaml runs
with the schedule's fixed input on one daemon thread, every `interval` seconds, the first run at start.
A failed run is logged and the next one comes, as in AWS (the schedules here do not retry)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from local.server import LambdaContext, LambdaHandler, load_handler
from local.template_routes import Function

logger = logging.getLogger("oneai.local")


class LocalSchedule:
    # what the thread and a failed run's log line call it
    label: ClassVar[str] = "schedule"

    def __init__(
        self, function: Function, event: dict[str, Any], interval: float, handler: LambdaHandler | None = None
    ) -> None:
        self._function = function
        self._event = event
        self._interval = interval
        self._handler = handler
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"local-{self.label.replace(' ', '-')}", daemon=True
        )

    def start(self) -> LocalSchedule:
        if self._handler is None:
            self._handler = load_handler(self._function)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=60)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

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
            logger.exception("the %s failed", self.label)
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
