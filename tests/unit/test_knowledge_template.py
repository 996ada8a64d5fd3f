"""The template gives the knowledge base's files the rights each function needs: the workspaces function
signs uploads and downloads and deletes files; every function that erases accounts (account, admin) or
purges workspaces (quota reset) deletes the files of the workspaces they remove, and the erasing ones the
user's attachments too. A missing policy would only show in AWS, as a 503 of an erasure or a purge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.template_routes import load_template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(load_template()["Resources"])


def policies_of(resources: dict[str, Any], function: str) -> list[Any]:
    return list(resources[function]["Properties"]["Policies"])


@pytest.mark.parametrize(
    ("function", "needed"),
    [
        ("WorkspacesFunction", {"KnowledgeFilesPolicy"}),
        ("AccountFunction", {"KnowledgeFilesPolicy", "AttachmentsDeletePolicy"}),
        ("AdminFunction", {"KnowledgeFilesPolicy", "AttachmentsDeletePolicy"}),
        ("QuotaResetFunction", {"KnowledgeFilesPolicy"}),
    ],
)
def test_each_function_that_touches_the_files_has_their_policy(
    resources: dict[str, Any], function: str, needed: set[str]
) -> None:
    refs = {p["Ref"] for p in policies_of(resources, function) if isinstance(p, dict) and "Ref" in p}
    assert needed <= refs, (function, needed - refs)


def test_the_knowledge_policy_covers_only_the_knowledge_prefix(resources: dict[str, Any]) -> None:
    statements = resources["KnowledgeFilesPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    objects = next(s for s in statements if s["Sid"] == "KnowledgeObjects")
    assert set(objects["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert objects["Resource"] == {"Fn::Sub": "${AttachmentsBucket.Arn}/knowledge/*"}
    listing = next(s for s in statements if s["Sid"] == "ListKnowledgePrefix")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "knowledge/*"}}


def test_the_ingest_may_tag_and_delete_the_knowledge_files_and_only_those(resources: dict[str, Any]) -> None:
    """It tags a document's file attached, and deletes a file that landed after its document was deleted
    (oneai.knowledge.ingest): without s3:DeleteObject that delete is an AccessDenied in AWS only."""
    inline = [p for p in policies_of(resources, "IngestFunction") if isinstance(p, dict) and "Statement" in p]
    statements = [s for policy in inline for s in policy["Statement"]]
    actions = {
        action
        for s in statements
        if s["Resource"] == {"Fn::Sub": "${AttachmentsBucket.Arn}/knowledge/*"}
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {"s3:PutObjectTagging", "s3:DeleteObject"}


def test_each_document_gets_the_whole_timeout_and_fails_after_the_ingests_last_attempt(
    resources: dict[str, Any],
) -> None:
    """One document per invocation, a failed record retried alone, no more invocations than reserved (the
    database connections), the message invisible while it runs, and the dead-letter queue only after the
    delivery the ingest treats as its last (it fails the document then, rather than leave it stuck)."""
    function = resources["IngestFunction"]["Properties"]
    sqs = function["Events"]["IngestQueue"]
    assert sqs["Type"] == "SQS" and sqs["Properties"]["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert sqs["Properties"]["BatchSize"] == 1
    sources = [event["Properties"] for event in function["Events"].values() if event["Type"] == "SQS"]
    assert all(source["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for source in sources)
    # the reserved invocations are the queues' own: none throttled by Lambda (a throttled message counts
    # a receive, towards the dead-letter queue), none beyond the connections they were counted for
    reserved = function["ReservedConcurrentExecutions"]
    assert sum(source["ScalingConfig"]["MaximumConcurrency"] for source in sources) == reserved
    queue = resources["IngestQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert resources["IngestDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    assert redrive["maxReceiveCount"] == int(function["Environment"]["Variables"]["ONEAI_INGEST_MAX_ATTEMPTS"])
    # a processing row is abandoned only after its worker's timeout has surely passed
    assert int(function["Environment"]["Variables"]["ONEAI_INGEST_STALE_SECONDS"]) > function["Timeout"]


def test_s3_notifies_the_uploads_queue_whose_notices_the_ingest_admits_in_batches(
    resources: dict[str, Any],
) -> None:
    """S3's notices of `knowledge/` files go to the document uploads queue (which S3 may send to, and only
    from this account), read by the ingest's `Uploads` source in batches with partial failures; a notice
    that cannot be passed on goes to the alarmed dead-letter queue."""
    [notice] = resources["AttachmentsBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notice["Queue"] == {"Fn::GetAtt": ["DocumentUploadsQueue", "Arn"]}
    assert notice["Event"] == "s3:ObjectCreated:*"
    assert notice["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "knowledge/"}]
    assert resources["AttachmentsBucket"]["DependsOn"] == "DocumentUploadsQueuePolicy"
    [grant] = resources["DocumentUploadsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "s3.amazonaws.com"} and grant["Action"] == "sqs:SendMessage"
    assert grant["Resource"] == {"Fn::GetAtt": ["DocumentUploadsQueue", "Arn"]}
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    function = resources["IngestFunction"]["Properties"]
    uploads = function["Events"]["Uploads"]["Properties"]
    assert uploads["Queue"] == {"Fn::GetAtt": ["DocumentUploadsQueue", "Arn"]}
    assert uploads["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 < uploads["BatchSize"] <= 10
    queue = resources["DocumentUploadsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    # the landed files' messages go to the ingest queue, which the function may send to
    send = {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["IngestQueue", "QueueName"]}}}
    assert send in function["Policies"]


def test_the_sweep_runs_every_15_minutes_with_the_input_the_handler_sweeps_on(resources: dict[str, Any]) -> None:
    events = resources["IngestFunction"]["Properties"]["Events"]
    [sweep] = [event["Properties"] for event in events.values() if event["Type"] == "ScheduleV2"]
    assert sweep["ScheduleExpression"] == "rate(15 minutes)"
    assert json.loads(sweep["Input"]) == {"sweep": "stuck-documents"}
    assert sweep["RetryPolicy"]["MaximumRetryAttempts"] >= 1  # a sweep repeated is harmless
