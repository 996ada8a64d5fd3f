"""template.yaml's notification resources say what the code relies on: every event the code publishes for
an email reaches the queue, failed records are retried alone and then dead-lettered (with an alarm), SES
may send only from the configured identity and address, and the summary runs on the 1st at 00:00 UTC."""

from __future__ import annotations

from typing import Any

import pytest

from local.template_routes import load_template
from oneai.notifications import occasions


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(load_template()["Resources"])


def test_the_rule_takes_every_event_that_becomes_an_email(resources: dict[str, Any]) -> None:
    pattern = resources["NotificationEventsRule"]["Properties"]["EventPattern"]
    published = {
        (occasions.ACCOUNT_SOURCE, occasions.USER_CREATED),
        (occasions.QUOTA_SOURCE, occasions.QUOTA_WARNING),
        (occasions.BILLING_SOURCE, occasions.PAYMENT_FAILED),
        (occasions.BILLING_SOURCE, occasions.PAYMENT_RECEIVED),
        (occasions.BILLING_SOURCE, occasions.SUBSCRIPTION_ENDED),
        (occasions.NOTIFICATIONS_SOURCE, occasions.USAGE_SUMMARY_DUE),
        (occasions.WORKSPACES_SOURCE, occasions.WORKSPACE_INVITATION_CREATED),
        (occasions.CREDITS_SOURCE, occasions.CREDITS_LOW),
    }
    assert {source for source, _ in published} == set(pattern["source"])
    assert {detail_type for _, detail_type in published} == set(pattern["detail-type"])
    target = resources["NotificationEventsRule"]["Properties"]["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["NotificationsQueue", "Arn"]}


def test_batches_report_partial_failures_and_dead_letter_with_an_alarm(resources: dict[str, Any]) -> None:
    function = resources["NotificationsFunction"]["Properties"]
    [source] = function["Events"].values()
    assert source["Type"] == "SQS" and source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["NotificationsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["NotificationsDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    alarm = resources["NotificationsDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["NotificationsDeadLetterQueue", "QueueName"]}
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_ses_may_send_only_from_the_configured_identity_and_address(resources: dict[str, Any]) -> None:
    statements = [
        statement
        for policy in resources["NotificationsFunction"]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]
    [send] = [s for s in statements if s["Action"] == "ses:SendEmail"]
    assert send["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "MailFromAddress"}}}
    condition, with_set, without_set = send["Resource"]["Fn::If"]
    assert condition == "HasMailConfigurationSet"
    identity = {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailIdentity}"}
    assert without_set == [identity] and with_set[0] == identity and len(with_set) == 2
    assert all("*" not in str(resource) for resource in with_set)


def test_the_usage_summary_runs_on_the_first_at_midnight_utc(resources: dict[str, Any]) -> None:
    schedule = resources["UsageSummarySchedule"]["Properties"]
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == ("cron(0 0 1 * ? *)", "UTC")
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["UsageSummaryFunction", "Arn"]}
    assert '"detail-type": "UsageSummarySweep"' in schedule["Target"]["Input"]["Fn::Sub"]
    handler = resources["UsageSummaryFunction"]["Properties"]["Handler"]
    assert handler == "notifications.handler.usage_summary_handler"


def test_every_function_that_can_see_a_new_user_may_publish(resources: dict[str, Any]) -> None:
    # UserCreated is published after a new user's first authenticated request, whichever function it hits
    for name in (
        "ConversationsFunction",
        "ChatStreamFunction",
        "AccountFunction",
        "BillingFunction",
        "WorkspacesFunction",
    ):
        policies = resources[name]["Properties"]["Policies"]
        assert any(isinstance(p, dict) and "EventBridgePutEventsPolicy" in p for p in policies), name
