"""The quota-reset entry point, driven by the events of events/quota_reset/ (what the schedules of
template.yaml send, as `sam local invoke QuotaResetFunction -e events/quota_reset/daily.json` would), against
the test database: it sweeps the event's frequency, ends expired grace periods, and reports the run as its
return value, one log line and EMF metrics on stdout. A bad frequency is an error (retried, then the DLQ)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from local.template_routes import load_template
from oneai.config import override_settings
from oneai.database import get_database
from oneai.logging import logger
from oneai.quota.sweep import sweep_due_quotas
from oneai.quota.tiers import RESET_FREQUENCIES

EVENTS = Path(__file__).resolve().parents[2] / "events" / "quota_reset"
SCHEDULES = {
    "3hour": ("QuotaReset3HourSchedule", "rate(1 hour)"),
    "daily": ("QuotaResetDailySchedule", "cron(0 0 * * ? *)"),
    "monthly": ("QuotaResetMonthlySchedule", "cron(0 0 1 * ? *)"),
}


class FakeLambdaContext:
    function_name = "QuotaResetFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-south-1:123456789012:function:QuotaResetFunction"
    aws_request_id = "0b9c7a4e-5d3f-4a61-9e2b-7c8d1f0a3b5e"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sample_event(frequency: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{frequency}.json").read_text(encoding="utf-8"))
    return event


def stdout_json(text: str) -> list[dict[str, Any]]:
    """Every JSON object line of captured stdout (Powertools Metrics prints its EMF documents there)."""
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def log_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[dict[str, Any]]:
    """The log records of the call as the function writes them (the Powertools JSON formatter, with the
    Lambda context keys). The logger's stream was bound at import, so they are read from the records."""
    formatter = logger.registered_formatter
    return [
        json.loads(formatter.format(r)) for r in caplog.records if r.name == logger.name and r.levelno >= level
    ]


@pytest.fixture
def handler(database_url: str) -> Iterator[Any]:
    """The deployed entry point, with the function's database being the test database."""
    from quota_reset.handler import lambda_handler

    with override_settings(database_url=SecretStr(database_url)):
        sweep_all = get_database()
        for frequency in RESET_FREQUENCIES:  # start from nothing due
            sweep_due_quotas(sweep_all, frequency)
        yield lambda_handler


def due_users(database_url: str, frequency: str, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "insert into auth.users (id, email) select id, 'reset-' || id || '@example.test' from unnest(%s::uuid[]) id",
            (ids,),
        )
        admin.execute(
            "update public.usage_quotas set reset_frequency = %s, used_count = 2,"
            " next_reset_at = now() - interval '1 minute' where user_id = any(%s)",
            (frequency, ids),
        )
    return ids


def expired_grace(database_url: str, user_id: uuid.UUID) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "update public.users set subscription_tier = 'pro', subscription_status = 'pending' where id = %s",
            (user_id,),
        )
        admin.execute(
            "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id, grace_until)"
            " values (%s, 'plan_pro_monthly', 'pro', 'pending', %s, now() - %s)",
            (user_id, f"sub_{user_id.hex[:14]}", timedelta(hours=1)),
        )


@pytest.mark.parametrize("frequency", RESET_FREQUENCIES)
def test_each_schedules_event_sweeps_its_frequency_and_reports_it(
    handler: Any,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    frequency: str,
) -> None:
    # GIVEN 4 users (12 rows) due for this frequency and one grace period that has run out
    users = due_users(database_url, frequency, 4)
    expired_grace(database_url, users[0])
    capsys.readouterr()
    caplog.clear()

    # WHEN the schedule's event arrives
    result = handler(sample_event(frequency), FakeLambdaContext())

    # THEN the report is returned
    assert result == {
        "frequency": frequency,
        "reset": 12,
        "remaining": 0,
        "batches": 1,
        "stopped_early": False,
        "seconds": result["seconds"],
        "grace_periods_ended": 1,
        "cancellations_ended": 0,
        # without Razorpay keys the plan-change sweep has nothing to call, and says so
        "replaced_cancels_settled": 0,
        "abandoned_replacements_cancelled": 0,
        "replacements_skipped": True,
        "rate_limit_buckets_cleared": result["rate_limit_buckets_cleared"],  # others' buckets may be full
        "workspaces_purged": result["workspaces_purged"],  # test_workspace_purge.py counts these
        "chatbots_purged": result["chatbots_purged"],  # test_chatbots.py counts these
        "credit_holds_released": result["credit_holds_released"],  # test_credits.py counts these
    }
    printed = stdout_json(capsys.readouterr().out)
    # AND logged as one line, with the invocation's context
    [line] = [p for p in log_lines(caplog) if p["message"] == "quota reset sweep finished"]
    assert {key: line[key] for key in ("reset", "remaining", "grace_periods_ended", "stopped_early")} == {
        "reset": 12,
        "remaining": 0,
        "grace_periods_ended": 1,
        "stopped_early": False,
    }
    assert line["function_request_id"] == FakeLambdaContext.aws_request_id
    assert line["execution_id"] == sample_event(frequency)["id"]
    # AND published as EMF metrics in the OneAI namespace, by frequency
    [emf] = [p for p in printed if "_aws" in p]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "OneAI"
    assert "frequency" in directive["Dimensions"][0]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "QuotaRowsReset",
        "QuotaRowsRemaining",
        "GracePeriodsEnded",
    }
    assert all(m["Unit"] == "Count" for m in directive["Metrics"])
    assert (emf["frequency"], emf["QuotaRowsReset"], emf["QuotaRowsRemaining"], emf["GracePeriodsEnded"]) == (
        frequency,
        [12.0],
        [0.0],
        [1.0],
    )


def test_with_no_time_left_the_handler_reports_the_rows_left(
    handler: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    due_users(database_url, "daily", 2)
    result = handler(sample_event("daily"), FakeLambdaContext(remaining_ms=1_000))
    assert (result["reset"], result["remaining"], result["stopped_early"], result["batches"]) == (0, 6, True, 0)
    [emf] = [p for p in stdout_json(capsys.readouterr().out) if "_aws" in p]
    assert emf["QuotaRowsRemaining"] == [6.0]
    # the next run, with its time, finishes
    assert handler(sample_event("daily"), FakeLambdaContext())["reset"] == 6


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # nothing to count: it failed
@pytest.mark.parametrize(
    "detail", [{"frequency": "weekly"}, {"frequency": None}, {}, "daily"], ids=["weekly", "null", "none", "text"]
)
def test_an_unknown_frequency_is_logged_and_raised(
    handler: Any, caplog: pytest.LogCaptureFixture, detail: Any
) -> None:
    event = {**sample_event("daily"), "detail": detail}
    with pytest.raises(ValueError, match="unknown reset frequency"):
        handler(event, FakeLambdaContext())
    errors = log_lines(caplog, logging.ERROR)
    assert [e["message"] for e in errors] == ["unknown reset frequency in the schedule's event"]


def test_the_sample_events_are_what_the_schedules_send() -> None:
    """Each schedule of template.yaml sends, once Scheduler fills in its context attributes and
    CloudFormation its pseudo parameters, exactly the shape of the matching events/quota_reset file."""
    resources = load_template()["Resources"]
    function = resources["QuotaResetFunction"]["Properties"]
    assert (function["CodeUri"], function["Handler"], function["Timeout"]) == (
        "functions/quota_reset/",
        "quota_reset.handler.lambda_handler",
        300,
    )
    schedules = {k: v for k, v in resources.items() if v["Type"] == "AWS::Scheduler::Schedule"}
    assert {name for name, _ in SCHEDULES.values()} <= set(schedules)
    for frequency, (name, expression) in SCHEDULES.items():
        properties = schedules[name]["Properties"]
        assert (properties["ScheduleExpression"], properties["ScheduleExpressionTimezone"]) == (expression, "UTC")
        target = properties["Target"]
        assert target["Arn"] == {"Fn::GetAtt": ["QuotaResetFunction", "Arn"]}
        assert "RetryPolicy" in target and "DeadLetterConfig" in target
        sample = sample_event(frequency)
        values = {
            "execution-id": sample["id"],
            "scheduled-time": sample["time"],
            "schedule-arn": sample["resources"][0],
            "AccountId": sample["account"],
            "Region": sample["region"],
        }
        filled = re.sub(
            r"<aws\.scheduler\.([a-z-]+)>|\$\{AWS::(\w+)\}",
            lambda m, values=values: values[m.group(1) or m.group(2)],
            target["Input"]["Fn::Sub"],
        )
        assert json.loads(filled) == sample
