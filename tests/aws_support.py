"""AWS in tests, through moto: fake credentials for its clients, a KMS key, and an EventBridge bus whose events of one
source land in an SQS queue, so a test can read back exactly what was published."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

Received = Callable[[], list[dict[str, Any]]]


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str = "ap-south-1") -> None:
    """The environment boto3 needs to make clients moto answers (no real account is ever reached)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@contextmanager
def moto_kms_key(monkeypatch: pytest.MonkeyPatch, alias: str, **settings: Any) -> Iterator[Any]:
    """Inside: moto's KMS with a key under `alias`, the provider keys' settings pointing at it (and any other
    `settings`); the KMS client yielded."""
    from oneai.config import override_settings

    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("kms")
        key_id = client.create_key(Description="oneai test key")["KeyMetadata"]["KeyId"]
        client.create_alias(AliasName=alias, TargetKeyId=key_id)
        with override_settings(provider_keys_kms_key_id=alias, kms_endpoint_url=None, **settings):
            yield client


@contextmanager
def captured_events(monkeypatch: pytest.MonkeyPatch, *, bus: str, source: str) -> Iterator[Received]:
    """Inside: a moto EventBridge bus `bus`; the function yielded returns the events of `source` sent so far."""
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=bus)
        queue_url = sqs.create_queue(QueueName="captured")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="capture", EventBusName=bus, EventPattern=json.dumps({"source": [source]}))
        events.put_targets(Rule="capture", EventBusName=bus, Targets=[{"Id": "q", "Arn": attributes["QueueArn"]}])

        def received() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = []
            while True:
                batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not batch:
                    return messages
                messages += [json.loads(m["Body"]) for m in batch]

        yield received
