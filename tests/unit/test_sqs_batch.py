"""The SQS batch loop of the notifications function: failures are per message, the rest go on."""

from __future__ import annotations

import pytest

from oneai.sqs_batch import SqsMessage, process_sqs_batch


def records(*bodies: str) -> dict[str, object]:
    return {"Records": [{"messageId": f"m-{i}", "body": body} for i, body in enumerate(bodies)]}


def test_only_the_messages_that_failed_are_reported_and_every_message_is_handled() -> None:
    handled: list[str] = []

    def handle(message: SqsMessage) -> None:
        handled.append(message.body)
        if message.body.startswith("bad"):
            raise ValueError("cannot deliver")

    answer = process_sqs_batch(records("ok-1", "bad-1", "ok-2", "bad-2"), handle)
    assert handled == ["ok-1", "bad-1", "ok-2", "bad-2"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]}


def test_a_batch_that_all_fails_is_answered_not_raised_and_an_empty_one_has_no_failures() -> None:
    def fail(message: SqsMessage) -> None:
        raise RuntimeError("down")

    assert process_sqs_batch(records("a", "b"), fail) == {
        "batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]
    }
    assert process_sqs_batch({"Records": []}, fail) == {"batchItemFailures": []}


def test_a_record_without_a_message_id_fails_the_invocation() -> None:
    # SQS always sends one; without it nothing could be reported, so the whole batch is retried
    with pytest.raises(KeyError):
        process_sqs_batch({"Records": [{"body": "x"}]}, lambda message: None)
