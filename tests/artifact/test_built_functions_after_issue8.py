"""The functions merged after the build checks (admin, docs, notifications, usage summary), each from its
built artifact in a bare python3.12 as Lambda runs it, answering its sample events from events/ as the
source-tree tests expect of them; AWS (SSM, SES v2, EventBridge, SQS) is moto in server mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import boto3
import psycopg
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from lambda_build.layout import REGION
from local import DEV_USER_EMAIL, DEV_USER_ID
from local.template_routes import load_template
from oneai.notifications.summary import Month
from tests.artifact.conftest import Built, built_functions, invoke_artifact
from tests.conftest import create_user
from tests.integration.test_account_events import dev_user_with_usage
from tests.integration.test_admin_events import EXPECTED as ADMIN_EXPECTED
from tests.integration.test_notifications import add_usage

__all__ = ["dev_user_with_usage"]  # a fixture, used by name

EVENTS = Path(__file__).resolve().parents[2] / "events"


def by_name(name: str) -> Built:
    return next(b for b in built_functions() if b.name == name)


def events_of(built: Built, names: list[str]) -> list[dict[str, Any]]:
    folder = EVENTS / built.function.events_dir_name
    return [json.loads((folder / f"{name}.json").read_text()) for name in names]


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_admin_answers_every_sample_event_with_the_admin_token_they_carry(
    dev_user_with_usage: None, database_url: str, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("AdminFunction")
    names = list(ADMIN_EXPECTED)
    run = invoke_artifact(
        built, events_of(built, names), endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert {n: a["statusCode"] for n, a in zip(names, run.answers, strict=True)} == ADMIN_EXPECTED
    answers = dict(zip(names, (json.loads(a["body"]) for a in run.answers), strict=True))
    assert answers["get-admin-open-api"]["info"]["title"].startswith("OneAI")
    assert answers["get-user"]["error"]["code"] == "NOT_FOUND"
    assert isinstance(answers["list-users"]["items"], list)
    # the sample ids name nobody: the writes were refused before anything was written or audited
    with psycopg.connect(database_url) as conn:
        audited = conn.execute("select count(*) from public.audit_log where actor_id = %s", (DEV_USER_ID,))
        assert audited.fetchone() == (0,)


def test_docs_searches_reads_and_takes_feedback_from_the_guide_index(
    dev_user_with_usage: None, database_url: str, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("DocsFunction")
    names = ["get-docs-open-api", "search-guide", "get-guide-page", "leave-guide-feedback"]
    run = invoke_artifact(
        built, events_of(built, names), endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert [a["statusCode"] for a in run.answers] == [200, 200, 200, 201], [a["body"][:200] for a in run.answers]
    spec, found, page, receipt = (json.loads(a["body"]) for a in run.answers)
    assert "/docs/search" in spec["paths"]
    # "reset my quota" finds the quotas page first, from the index the deploy step builds
    assert found["items"][0]["slug"] == "quotas-and-resets"
    assert page["slug"] == "getting-started" and page["markdown"].startswith("# ")
    # the sample carries the dev user's token: the feedback is theirs
    assert receipt["slug"] == "quotas-and-resets" and receipt["signed_in"] is True
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "select page_slug, user_id::text, helpful, comment from public.guide_feedback where id = %s",
            (receipt["id"],),
        ).fetchone()
    assert stored == ("quotas-and-resets", DEV_USER_ID, True, "Clear, thanks.")


@dataclass
class MailAndEvents:
    endpoint: str
    ses: Any
    sqs: Any
    summaries_queue: str

    def sent_to(self, address: str) -> list[EmailMessage]:
        """What moto's SES accepted for `address` (moto runs in this process, in a thread)."""
        backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
        emails = [
            cast(EmailMessage, message_from_string(m.raw_data, policy=policy.default))
            for m in backend.sent_messages
            if getattr(m, "raw_data", None)
        ]
        return [e for e in emails if address in str(e["To"])]

    def summaries(self) -> list[dict[str, Any]]:
        """The UsageSummaryDue events the default bus routed to the test's queue."""
        bodies: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.summaries_queue, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in batch:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.summaries_queue, ReceiptHandle=message["ReceiptHandle"])
        return bodies


@pytest.fixture(scope="module")
def mail_and_events(moto_endpoint: str) -> Iterator[MailAndEvents]:
    """The template's sender identity verified in moto's SES, and the template's notification rule on the
    default bus (the template's EventBusName default) into a queue the test reads."""
    template = load_template()
    identity = template["Parameters"]["MailIdentity"]["Default"]
    ses = client("sesv2", moto_endpoint)
    ses.create_email_identity(EmailIdentity=identity)
    events, sqs = client("events", moto_endpoint), client("sqs", moto_endpoint)
    queue_url = sqs.create_queue(QueueName="artifact-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = template["Resources"]["NotificationEventsRule"]["Properties"]["EventPattern"]
    events.put_rule(Name="artifact-notifications", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="artifact-notifications", Targets=[{"Id": "queue", "Arn": arn}])
    yield MailAndEvents(moto_endpoint, ses, sqs, queue_url)
    events.remove_targets(Rule="artifact-notifications", Ids=["queue"])
    events.delete_rule(Name="artifact-notifications")


def test_notifications_sends_a_batchs_email_with_ses_and_reports_a_malformed_record(
    dev_user_with_usage: None, database_url: str, mail_and_events: MailAndEvents, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("NotificationsFunction")
    [sample] = events_of(built, ["payment-failed"])
    [record] = sample["Records"]
    malformed = {**record, "messageId": "malformed-1", "body": "{not json"}
    batch = {"Records": [record, malformed]}
    # the same batch twice: SQS delivers at least once, the email goes once
    run = invoke_artifact(
        built, [batch, batch], endpoint=mail_and_events.endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert run.answers == [{"batchItemFailures": [{"itemIdentifier": "malformed-1"}]}] * 2
    [email] = mail_and_events.sent_to(DEV_USER_EMAIL)
    assert email["Subject"] == "Your OneAI payment failed"
    assert "no-reply@" in str(email["From"])
    body = email.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(cast(EmailMessage, body).get_content())
    assert "INR 499.00" in text and "until 2025-01-04 12:00 UTC" in text
    # the body never reaches the logs, only what failed
    assert "not json" not in run.stderr
    with psycopg.connect(database_url) as conn:
        claims = conn.execute(
            "select kind, status from public.sent_notifications where user_id = %s", (DEV_USER_ID,)
        ).fetchall()
    assert [(str(k), str(s)) for k, s in claims] == [("payment_failed", "sent")]


def test_usage_summary_publishes_one_event_per_user_with_usage_to_eventbridge(
    database_url: str, mail_and_events: MailAndEvents, runtime_lib: Path, tmp_path: Path
) -> None:
    built = by_name("UsageSummaryFunction")
    [sample] = events_of(built, ["usage-summary-sweep"])
    sample_month = Month.parse(sample["detail"]["month"])
    last_month = Month.before(datetime.now(UTC))
    scheduled = {**sample, "detail": {}}  # as the schedule sends it: last month
    user, idle = create_user(database_url), create_user(database_url)
    add_usage(database_url, user.id, at=sample_month.start + timedelta(days=2), cost="0.25", tokens=(10, 20))
    add_usage(database_url, user.id, at=last_month.start + timedelta(hours=1), cost="0.5", tokens=(5, 5))
    mail_and_events.summaries()  # what earlier tests left on the queue
    run = invoke_artifact(
        built, [sample, scheduled], endpoint=mail_and_events.endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path
    )
    assert [a["month"] for a in run.answers] == [sample_month.label, last_month.label]
    assert all(a["published"] >= 1 and not a["stopped_early"] for a in run.answers)
    mine = [e for e in mail_and_events.summaries() if e["detail"]["user_id"] == str(user.id)]
    assert sorted((e["detail-type"], e["detail"]["month"], e["detail"]["cost"]) for e in mine) == sorted(
        [("UsageSummaryDue", sample_month.label, "0.25"), ("UsageSummaryDue", last_month.label, "0.5")]
    )
    assert all(e["detail"]["user_id"] != str(idle.id) for e in mail_and_events.summaries())
