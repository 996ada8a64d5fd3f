"""`make dev`'s stand-in for IngestFunction's sweep schedule (local/ingest_sweep.py): the function and its
input come from template.yaml (the sweep sent in AWS, as events/ingest/sweep.json), each run calls the
function's handler with that input, a failed run is logged and the next one comes, and stop ends it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from local.ingest_sweep import (
    DEFAULT_INTERVAL_SECONDS,
    LocalIngestSweep,
    ingest_sweep_function,
    interval_from_environment,
    schedule_input,
)
from local.template_routes import Function, list_functions, load_template

SWEEP_EVENT = Path(__file__).resolve().parents[2] / "events" / "ingest" / "sweep.json"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(load_template())


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> Function:
    found = ingest_sweep_function(list_functions(template))
    assert found is not None
    return found


def test_the_function_and_its_input_are_the_templates_sweep(template: dict[str, Any], function: Function) -> None:
    assert function.logical_id == "IngestFunction"
    assert (function.handler, function.timeout_seconds) == ("ingest.handler.lambda_handler", 600)
    assert schedule_input(template, function) == {"sweep": "stuck-documents"}
    assert schedule_input(template, function) == json.loads(SWEEP_EVENT.read_text())


def test_run_once_calls_the_handler_with_the_schedules_input(template: dict[str, Any], function: Function) -> None:
    calls: list[tuple[dict[str, Any], str, int]] = []
    report = {"requeued": 1, "failed_stalled": 0, "failed_uploads": 2, "resent_queued": 0}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((event, context.function_name, context.memory_limit_in_mb))
        return report

    sweep = LocalIngestSweep(function, schedule_input(template, function), 3600, handler)
    assert sweep.run_once() == report
    assert sweep.run_once() == report
    assert calls == [({"sweep": "stuck-documents"}, "IngestFunction", 2048)] * 2


def test_a_failed_run_is_logged_and_the_next_one_comes_until_stop(
    template: dict[str, Any], function: Function, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("the database is down")
        return {"requeued": 0, "failed_stalled": 0, "failed_uploads": 0, "resent_queued": 0}

    with caplog.at_level(logging.ERROR, logger="oneai.local"):
        sweep = LocalIngestSweep(function, schedule_input(template, function), 0.05, handler).start()
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        sweep.stop()
    stopped_at = len(calls)
    time.sleep(0.2)
    assert stopped_at >= 3 and len(calls) == stopped_at  # the first run at start, then every interval
    assert not sweep.running
    assert all(event == {"sweep": "stuck-documents"} for event in calls)
    [failure] = [r for r in caplog.records if r.name == "oneai.local"]
    assert failure.getMessage() == "the ingest sweep failed" and failure.exc_info is not None


def test_the_interval_is_300_seconds_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEAI_LOCAL_INGEST_SWEEP_SECONDS", raising=False)
    assert interval_from_environment() == DEFAULT_INTERVAL_SECONDS == 300
    monkeypatch.setenv("ONEAI_LOCAL_INGEST_SWEEP_SECONDS", "0")
    assert interval_from_environment() == 0  # make dev starts no sweep


def test_make_dev_starts_no_sweep_at_0_and_stops_the_one_it_starts(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from local.__main__ import _stop_all, start_ingest_sweep

    monkeypatch.setenv("ONEAI_LOCAL_INGEST_SWEEP_SECONDS", "0")
    assert start_ingest_sweep(template) is None
    monkeypatch.setenv("ONEAI_LOCAL_INGEST_SWEEP_SECONDS", "3600")
    calls: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return {}

    monkeypatch.setattr("local.schedule.load_handler", lambda function: handler)
    sweep = start_ingest_sweep(template)
    assert isinstance(sweep, LocalIngestSweep)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    _stop_all(sweep)
    assert calls == [{"sweep": "stuck-documents"}] and not sweep.running  # the first run at start only
