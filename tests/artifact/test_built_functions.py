"""Every function of template.yaml, from its built artifact, in a bare python3.12 as Lambda runs it,
answers its sample events from events/ as the source-tree tests expect of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local import DEV_USER_ID
from tests.artifact.conftest import Built, built_functions, invoke_artifact
from tests.integration.test_account_events import EXPECTED as ACCOUNT_EXPECTED
from tests.integration.test_account_events import dev_user_with_usage, with_body
from tests.integration.test_handler_events import EXPECTED as CONVERSATIONS_EXPECTED
from tests.integration.test_handler_events import sample_rows

__all__ = ["dev_user_with_usage", "sample_rows"]  # fixtures, used by name

EVENTS = Path(__file__).resolve().parents[2] / "events"
PLAIN_HANDLERS = [b for b in built_functions() if not b.function.handler.endswith(".sh")]


def events_of(built: Built, names: list[str]) -> list[dict[str, Any]]:
    folder = EVENTS / built.function.events_dir_name
    return [json.loads((folder / f"{name}.json").read_text()) for name in names]


def by_name(name: str) -> Built:
    return next(b for b in built_functions() if b.name == name)


@pytest.mark.parametrize("built", PLAIN_HANDLERS, ids=lambda b: b.name)
def test_the_handler_loads_from_the_artifact_without_the_aws_sdk(
    built: Built, build_dir: Path, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    run = invoke_artifact(built, [], endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path)
    # the handler came from the build output, not the source tree
    assert Path(run.imported["file"]).is_relative_to(build_dir / built.name)
    # boto3 is imported where a call is made, never at import; tracing (on by default) patches botocore
    # where its first client is built, so only botocore's package is loaded, for Powertools' user-agent
    # hook; Razorpay's SDK (and requests under it) waits for the first Razorpay call
    assert run.imported["aws_sdk_at_import"] == ["botocore"]
    assert run.imported["client_libraries_at_import"] == []
    # and likewise with tracing off
    untraced = invoke_artifact(
        built,
        [],
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
        environment={"POWERTOOLS_TRACE_DISABLED": "true"},
    )
    assert untraced.imported["aws_sdk_at_import"] == ["botocore"]
    assert untraced.imported["client_libraries_at_import"] == []


def test_conversations_answers_every_sample_event(
    sample_rows: None, database_url: str, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("ConversationsFunction")
    names = [name for name, _ in CONVERSATIONS_EXPECTED]
    run = invoke_artifact(
        built, events_of(built, names), endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert [a["statusCode"] for a in run.answers] == [status for _, status in CONVERSATIONS_EXPECTED], [
        (n, a["statusCode"], a.get("body", "")[:200]) for n, a in zip(names, run.answers, strict=True)
    ]
    with psycopg.connect(database_url) as conn:
        left = conn.execute("select count(*) from public.conversations where user_id = %s", (DEV_USER_ID,))
        assert left.fetchone() == (1,)  # the one the create event made; the sample one was deleted


def test_account_answers_every_sample_event(
    dev_user_with_usage: None, database_url: str, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("AccountFunction")
    names = [name for name, _ in ACCOUNT_EXPECTED]
    events = [with_body(name, event) for name, event in zip(names, events_of(built, names), strict=True)]
    run = invoke_artifact(built, events, endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path)
    assert [a["statusCode"] for a in run.answers] == [status for _, status in ACCOUNT_EXPECTED], [
        (n, a["statusCode"], a.get("body", "")[:200]) for n, a in zip(names, run.answers, strict=True)
    ]
    answers = dict(zip(names, run.answers, strict=True))
    quota = json.loads(answers["get-quota"]["body"])
    assert quota["subscription"] == {"tier": "free", "status": "active"}
    # the routes added after the build checks: the unsubscribe link (signed with the stage's secret, read
    # from SSM), API keys, the export and the erasure
    assert "no more quota warning emails" in answers["unsubscribe"]["body"]
    assert json.loads(answers["create-api-key"]["body"])["key"].startswith("oneai_sk_")
    assert [k["name"] for k in json.loads(answers["list-api-keys"]["body"])["items"]] == ["sam local invoke"]
    assert json.loads(answers["export-account"]["body"])["profile"]["id"] == DEV_USER_ID
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from auth.users where id = %s", (DEV_USER_ID,)).fetchone() == (0,)


def test_billing_answers_its_sample_events_that_need_no_razorpay_call(
    dev_user_with_usage: None, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("BillingFunction")
    expected = [("get-billing-open-api", 200), ("list-plans", 200), ("get-subscription", 200)]
    run = invoke_artifact(
        built,
        events_of(built, [name for name, _ in expected]),
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
    )
    assert [a["statusCode"] for a in run.answers] == [status for _, status in expected]
    assert json.loads(run.answers[0]["body"])["info"]["title"] == "OneAI billing"


def test_webhooks_apply_signed_deliveries_and_refuse_a_bad_signature(
    dev_user_with_usage: None, database_url: str, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("WebhooksFunction")
    names = ["subscription-activated", "payment-failed", "subscription-cancelled", "bad-signature"]
    run = invoke_artifact(
        built, events_of(built, names), endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert [a["statusCode"] for a in run.answers] == [200, 200, 200, 400]
    assert json.loads(run.answers[-1]["body"])["error"]["code"] == "BAD_REQUEST"
    with psycopg.connect(database_url) as conn:
        seen = conn.execute("select count(*) from public.processed_webhook_events").fetchone()
    assert seen is not None and seen[0] >= 3


def test_quota_reset_sweeps_each_frequency(moto_endpoint: str, runtime_lib: Path, tmp_path: Path) -> None:
    built = by_name("QuotaResetFunction")
    run = invoke_artifact(
        built,
        events_of(built, ["3hour", "daily", "monthly"]),
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
    )
    assert len(run.answers) == 3
    for answer in run.answers:
        assert {"reset", "remaining", "grace_periods_ended", "cancellations_ended"} <= answer.keys()


def test_analytics_runs_its_schedules_event(moto_endpoint: str, runtime_lib: Path, tmp_path: Path) -> None:
    """Without an OpenRouter key (none in this environment) the rollups are done and no question is sent."""
    built = by_name("AnalyticsFunction")
    run = invoke_artifact(
        built,
        events_of(built, ["rollup", "rollup"]),
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
    )
    assert len(run.answers) == 2
    for answer in run.answers:
        assert (answer["questions_skipped"], answer["questions_failed"], answer["stopped_early"]) == (
            True,
            False,
            False,
        )
        assert answer["days_remaining"] == 0
    assert run.answers[1]["days_recomputed"] == 0  # the first run left nothing to do


def test_after_a_snapstart_restore_no_connection_from_before_the_snapshot_is_reused(
    moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("QuotaResetFunction")
    run = invoke_artifact(
        built,
        events_of(built, ["daily", "daily", "daily"]),
        endpoint=moto_endpoint,
        runtime_lib=runtime_lib,
        tmp_path=tmp_path,
        restore_after=2,
    )
    # the runtime's after-restore hook was registered by the handler's import
    assert run.restored == 1
    before_one, before_two, after = run.backend_pids
    # warm invocations reuse the container's connection; the restored container opens its own
    assert before_one == before_two is not None
    assert after is not None and after != before_two
