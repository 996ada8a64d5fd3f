"""The outbound webhooks' pieces without a network: the Standard Webhooks signature (checked by the
receiving side written from the specification in tests/webhook_receiver.py, and against the
specification's published example), the backoff schedule, domain event -> payload, and the template's
rule, queue and function."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.template_routes import _CloudFormationLoader, list_functions
from local.webhook_queue import matches, rule_patterns, webhook_function
from oneai.events import DomainEvent
from oneai.outbound_webhooks import signing
from oneai.outbound_webhooks.delivery import MAX_BACKOFF_SECONDS, backoff
from oneai.outbound_webhooks.events import EVENT_TYPES, NotAWebhookEventError, from_eventbridge
from tests.webhook_receiver import verify_standard_webhook

REPO = Path(__file__).resolve().parents[2]


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


def test_the_signature_is_the_one_of_the_specifications_example() -> None:
    # Standard Webhooks' (and Svix's) published example.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert (
        signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_the_headers_pass_the_receivers_verification_and_a_changed_body_does_not() -> None:
    secret = signing.new_secret()
    body = '{"type":"document.processed","timestamp":"2026-11-28T10:00:00Z","data":{"chunks":3}}'
    msg_id = signing.message_id(uuid.uuid4())
    headers = signing.headers(secret, msg_id, int(time.time()), body)
    assert headers["webhook-id"] == msg_id and headers["content-type"] == "application/json"
    verify_standard_webhook(secret, headers, body.encode())
    with pytest.raises(AssertionError):
        verify_standard_webhook(secret, headers, body.replace("3", "4").encode())
    with pytest.raises(AssertionError):
        verify_standard_webhook(signing.new_secret(), headers, body.encode())


def test_the_message_id_is_the_same_for_every_attempt_of_a_delivery() -> None:
    delivery = uuid.uuid4()
    assert signing.message_id(delivery) == signing.message_id(delivery) == f"msg_{delivery.hex}"


def test_the_backoff_grows_exponentially_within_each_steps_jitter_and_is_capped() -> None:
    lows = [backoff(n, 30, rng=lambda: 0.0) for n in range(1, 6)]
    highs = [backoff(n, 30, rng=lambda: 0.999999) for n in range(1, 6)]
    assert lows == [30, 60, 120, 240, 480]
    assert all(high < 2 * low for low, high in zip(lows, highs, strict=True))
    # any jitter: each wait is longer than any earlier one (the step windows do not overlap)
    assert all(highs[i] <= lows[i + 1] for i in range(4))
    assert backoff(30, 30) == MAX_BACKOFF_SECONDS
    assert 0.05 <= backoff(1, 0.05) < 0.1


def test_a_day_of_backoff_is_about_fourteen_attempts_at_the_default_base() -> None:
    elapsed, attempts = 0.0, 1
    while True:
        elapsed += backoff(attempts, 30, rng=lambda: 0.5)
        if elapsed > 86400:
            break
        attempts += 1
    assert 10 <= attempts <= 20


def eventbridge(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "7c1b1a3e-0000-4000-8000-000000000001",
        "source": source,
        "detail-type": detail_type,
        "time": "2026-11-28T10:00:00Z",
        "detail": detail,
    }


def test_a_processed_document_becomes_document_processed_with_ids_and_numbers_only() -> None:
    workspace, document = uuid.uuid4(), uuid.uuid4()
    detail = {
        "workspace_id": str(workspace),
        "document_id": str(document),
        "filename": "guide.md",
        "status": "ready",
        "chunks": 4,
        "pages": 1,
        "text": "never sent",
    }
    event = from_eventbridge(eventbridge("oneai.knowledge", "DocumentProcessed", detail))
    assert event.workspace_id == workspace and event.type == "document.processed"
    assert event.event_id == "7c1b1a3e-0000-4000-8000-000000000001"
    assert json.loads(event.body) == {
        "type": "document.processed",
        "timestamp": "2026-11-28T10:00:00Z",
        "data": {
            "workspace_id": str(workspace),
            "document_id": str(document),
            "filename": "guide.md",
            "status": "ready",
            "chunks": 4,
            "pages": 1,
        },
    }


@pytest.mark.parametrize(
    ("source", "detail_type", "kind", "keys"),
    [
        ("oneai.knowledge", "DocumentFailed", "document.failed", {"document_id", "filename", "status", "error"}),
        ("oneai.widget", "ConversationRated", "conversation.rated", {"chatbot_id", "conversation_id", "score"}),
        ("oneai.credits", "CreditsLow", "credits.low", {"balance", "threshold"}),
    ],
)
def test_each_domain_event_becomes_its_webhook_event(
    source: str, detail_type: str, kind: str, keys: set[str]
) -> None:
    detail = {"workspace_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), **dict.fromkeys(keys, "x")}
    body = json.loads(from_eventbridge(eventbridge(source, detail_type, detail)).body)
    assert body["type"] == kind and set(body["data"]) == keys | {"workspace_id"}


def test_other_events_and_events_without_a_workspace_are_not_webhooks() -> None:
    with pytest.raises(NotAWebhookEventError):
        from_eventbridge(eventbridge("oneai.account", "UserCreated", {"user_id": str(uuid.uuid4())}))
    with pytest.raises(NotAWebhookEventError):
        from_eventbridge(eventbridge("oneai.credits", "CreditsLow", {"balance": "1.00"}))


def load_template() -> dict[str, Any]:
    return yaml.load((REPO / "template.yaml").read_text(), Loader=_CloudFormationLoader)  # noqa: S506


def test_the_template_routes_exactly_the_webhook_events_to_the_delivery_function() -> None:
    template = load_template()
    function = webhook_function(list_functions(template))
    assert function is not None
    patterns = rule_patterns(template, function)
    for source, detail_type in [
        ("oneai.knowledge", "DocumentProcessed"),
        ("oneai.knowledge", "DocumentFailed"),
        ("oneai.widget", "ConversationRated"),
        ("oneai.credits", "CreditsLow"),
    ]:
        assert matches(patterns, DomainEvent(source, detail_type, {}))
    assert not matches(patterns, DomainEvent("oneai.account", "UserCreated", {}))
    assert len(EVENT_TYPES) == 4


def test_the_delivery_function_reports_partial_batch_failures_and_its_queue_outlives_its_timeout() -> None:
    resources = load_template()["Resources"]
    function = resources["WebhookDeliveryFunction"]["Properties"]
    sqs = function["Events"]["WebhookQueue"]["Properties"]
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == function["ReservedConcurrentExecutions"]
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert "deadLetterTargetArn" in queue["RedrivePolicy"]
    # a batch of attempts at the longest timeout fits the function's timeout
    assert sqs["BatchSize"] * 10 < function["Timeout"]
