"""The analytics entry point, driven by events/analytics/ (what its schedule in template.yaml sends, as
`sam local invoke AnalyticsFunction -e events/analytics/rollup.json` would), against the test database and the
fake OpenRouter's embeddings: it recomputes the days that changed, embeds new questions, and reports the run
as its return value, one log line (never a question's text) and EMF metrics on stdout."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from local.analytics_schedule import ANALYTICS_HANDLER
from local.fake_openrouter import FakeOpenRouter
from local.template_routes import load_template
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.logging import logger, set_invocation_keys
from tests.conftest import create_user
from tests.inbox_support import add_chatbot
from tests.integration.test_analytics import seed_conversation
from tests.integration.test_workspaces_rls import team

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "analytics"
SECRET_QUESTION = "What is the discount code for staff members?"


class FakeLambdaContext:
    function_name = "AnalyticsFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-south-1:123456789012:function:AnalyticsFunction"
    aws_request_id = "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f0"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sample_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "rollup.json").read_text(encoding="utf-8"))
    return event


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = logger.registered_formatter
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == logger.name]


@pytest.fixture
def handler(database_url: str) -> Iterator[Any]:
    """The deployed entry point, its database the test database, its OpenRouter the fake one."""
    from analytics.handler import lambda_handler

    with (
        FakeOpenRouter(delay=0.0) as openrouter,
        override_settings(
            database_url=SecretStr(database_url),
            openrouter_api_key=SecretStr("sk-or-v1-test-key"),
            openrouter_base_url=openrouter.base_url,
        ),
    ):
        yield lambda_handler


def test_every_analytics_sample_event_is_listed() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == ["rollup"]


def test_the_schedules_event_recomputes_the_changed_days_and_reports_the_run(
    handler: Any,
    db: Database,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = create_user(database_url)
    workspace = team(db, owner)
    chatbot = add_chatbot(database_url, workspace)
    handler(sample_event(), FakeLambdaContext())  # other tests' leftovers done first
    seed_conversation(
        db, workspace, chatbot, datetime(2026, 10, 7, 9, tzinfo=UTC),
        [("user", SECRET_QUESTION, 0, None, None), ("assistant", "Ask your manager.", 2, 450, 1200)], rating=3,
    )  # fmt: skip
    capsys.readouterr()
    caplog.clear()
    # another function's invocation ran on this thread before (one process serves them all under make dev)
    set_invocation_keys(function_name="AccountFunction", function_request_id=str(uuid.uuid4()))

    with caplog.at_level(logging.DEBUG, logger=logger.name):
        result = handler(sample_event(), FakeLambdaContext())

    assert result == {
        "days_recomputed": 1,
        "rows_written": 1,
        "batches": 1,
        "days_remaining": 0,
        "questions_added": 1,
        "questions_failed": False,
        "questions_skipped": False,
        "stopped_early": False,
        "seconds": result["seconds"],
    }
    with db.service_transaction() as conn:
        row = conn.execute(
            "select messages, conversations, rated, by_score from public.chatbot_daily_analytics where workspace_id = %s",
            (workspace,),
        ).fetchone()
        question = conn.execute(
            "select question from public.chatbot_questions where workspace_id = %s", (workspace,)
        ).fetchone()
    assert row is not None and (row["messages"], row["conversations"], row["rated"], row["by_score"]) == (
        2, 1, 1, [0, 0, 1, 0, 0],
    )  # fmt: skip
    assert question is not None and question["question"] == SECRET_QUESTION
    # one line for the run, with the invocation's context; the question's text is in no log line
    lines = log_lines(caplog)
    [line] = [p for p in lines if p["message"] == "analytics rollup finished"]
    assert (line["days_recomputed"], line["questions_added"]) == (1, 1)
    assert line["function_request_id"] == FakeLambdaContext.aws_request_id
    printed = capsys.readouterr()
    assert "discount code" not in json.dumps(lines) + printed.out + printed.err
    # EMF metrics in the OneAI namespace
    [emf] = [json.loads(p) for p in printed.out.splitlines() if p.startswith("{") and "_aws" in p]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "OneAI"
    assert {m["Name"] for m in directive["Metrics"]} == {
        "AnalyticsDaysRecomputed",
        "AnalyticsDaysRemaining",
        "AnalyticsQuestionsAdded",
    }
    assert (emf["AnalyticsDaysRecomputed"], emf["AnalyticsQuestionsAdded"]) == ([1.0], [1.0])

    # run again: nothing to do, nothing changes
    again = handler(sample_event(), FakeLambdaContext())
    assert (again["days_recomputed"], again["questions_added"]) == (0, 0)


def test_with_no_time_left_the_run_leaves_the_days_marked_for_the_next(
    handler: Any, db: Database, database_url: str
) -> None:
    workspace = team(db, create_user(database_url))
    chatbot = add_chatbot(database_url, workspace)
    handler(sample_event(), FakeLambdaContext())
    seed_conversation(
        db, workspace, chatbot, datetime(2026, 10, 8, 9, tzinfo=UTC), [("user", "hi", 0, None, None)]
    )
    short = handler(sample_event(), FakeLambdaContext(remaining_ms=1_000))
    assert (short["days_recomputed"], short["stopped_early"], short["days_remaining"]) == (0, True, 1)
    assert handler(sample_event(), FakeLambdaContext())["days_recomputed"] == 1


def test_the_sample_event_is_what_the_schedule_sends_and_the_function_holds_only_what_it_needs() -> None:
    resources = load_template()["Resources"]
    function = resources["AnalyticsFunction"]["Properties"]
    assert (
        function["CodeUri"],
        function["Handler"],
        function["Timeout"],
        function["ReservedConcurrentExecutions"],
    ) == (
        "functions/analytics/",
        ANALYTICS_HANDLER,
        300,
        1,
    )
    # least privilege: the secrets (database, OpenRouter) and nothing else; no API route
    assert function["Policies"] == [{"Ref": "SecretsReadPolicy"}]
    [(name, schedule)] = function["Events"].items()
    assert (name, schedule["Type"]) == ("Rollup", "ScheduleV2")
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert json.loads(schedule["Properties"]["Input"]) == sample_event()
    assert "AnalyticsLogGroup" in resources and "AnalyticsErrorsAlarm" in resources
    assert resources["AnalyticsErrorsAlarm"]["Properties"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "AnalyticsFunction"}}
    ]


def test_a_manual_run_may_lower_the_bound(handler: Any, db: Database, database_url: str) -> None:
    workspace = team(db, create_user(database_url))
    chatbot = add_chatbot(database_url, workspace)
    handler(sample_event(), FakeLambdaContext())
    for day in (9, 10, 11):
        seed_conversation(
            db, workspace, chatbot, datetime(2026, 10, day, 9, tzinfo=UTC), [("user", "hi", 0, None, None)]
        )
    event = {**sample_event(), "id": str(uuid.uuid4()), "detail": {"max_days": 2}}
    first = handler(event, FakeLambdaContext())
    assert (first["days_recomputed"], first["stopped_early"]) == (2, True)
    assert handler(sample_event(), FakeLambdaContext())["days_recomputed"] == 1


def test_make_devs_stand_in_runs_the_function_with_the_schedules_input_until_stopped() -> None:
    from local.analytics_schedule import LocalAnalyticsSchedule, analytics_function, schedule_input
    from local.template_routes import list_functions

    template = load_template()
    function = analytics_function(list_functions(template))
    assert function is not None and function.logical_id == "AnalyticsFunction"
    assert schedule_input(template, function) == sample_event()
    calls: list[tuple[dict[str, Any], str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((event, context.function_name))
        if len(calls) == 1:
            raise RuntimeError("the database is down")  # logged; the next run comes all the same
        return {"days_recomputed": 0}

    schedule = LocalAnalyticsSchedule(function, sample_event(), 0.05, handler).start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    schedule.stop()
    stopped_at = len(calls)
    time.sleep(0.2)
    assert stopped_at >= 3 and len(calls) == stopped_at
    assert calls[0] == (sample_event(), "AnalyticsFunction")
