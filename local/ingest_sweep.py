"""The `make dev` stand-in for IngestFunction's sweep schedule (EventBridge Scheduler, every 15 minutes in
AWS): the function's `Handler` from template.yaml runs with the schedule's input (`{"sweep":
"stuck-documents"}`, as events/ingest/sweep.json) on one daemon thread, every
`ONEAI_LOCAL_INGEST_SWEEP_SECONDS` (default 300; `0`: no sweep), the first run at start. It requeues or
fails the documents whose worker died and fails the uploads that never completed; its requeue messages go
to the local ingest queue (local/ingest_queue.py), which must be started first. A failed run is logged
and the next one comes as in AWS."""

from __future__ import annotations

import os
from typing import Final

from local.ingest_queue import INGEST_HANDLER
from local.schedule import LocalSchedule, schedule_input
from local.template_routes import Function

__all__ = ["LocalIngestSweep", "ingest_sweep_function", "interval_from_environment", "schedule_input"]

DEFAULT_INTERVAL_SECONDS: Final = 300.0


class LocalIngestSweep(LocalSchedule):
    label = "ingest sweep"


def ingest_sweep_function(functions: list[Function]) -> Function | None:
    """The function whose schedule sweeps: the ingest function itself (template.yaml, its `Sweep` event)."""
    return next((fn for fn in functions if fn.handler == INGEST_HANDLER), None)


def interval_from_environment() -> float:
    value = os.environ.get("ONEAI_LOCAL_INGEST_SWEEP_SECONDS")
    return float(value) if value else DEFAULT_INTERVAL_SECONDS
