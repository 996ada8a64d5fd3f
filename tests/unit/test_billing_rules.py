"""The pure rules of the billing state machine and the quota tiers, case by case: which tier a user ends
up with when one subscription changes, how odd Razorpay bodies are read, which delivery ids are taken,
and the guards of the sweeps' batch loop. (The same rules over HTTP and the database: the integration
tests of webhooks and billing.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from oneai.billing.grace import end_expired_grace_periods
from oneai.billing.period_end import end_finished_cancellations
from oneai.billing.razorpay_events import parse_event
from oneai.billing.webhooks import MAX_EVENT_ID_LENGTH, TierDecision, decide_tier, delivery_id
from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.errors import BadRequestError
from oneai.quota.tiers import QUOTA_KEYS, TIER_NAMES, TIERS, quota_limit, tier

USER = "8c6f2a6e-3d0b-4f5e-9a43-0c2d9b1e7f10"


# ---------------------------------------------------------------- the tier of the user after a change


@pytest.mark.parametrize(
    ("subscription_tier", "entitled", "other_tiers", "user_tier", "expected"),
    [
        # a subscription that grants: its tier, unless another subscription grants more
        ("pro", True, [], "free", TierDecision("pro", decides=True)),
        ("pro", True, ["pro"], "pro", TierDecision("pro", decides=True)),
        ("enterprise", True, ["pro"], "pro", TierDecision("enterprise", decides=True)),
        ("pro", True, ["enterprise"], "enterprise", TierDecision("enterprise", decides=False)),
        # a subscription that stops granting: the best other one, else free ...
        ("pro", False, [], "pro", TierDecision("free", decides=True)),
        ("enterprise", False, ["pro"], "enterprise", TierDecision("pro", decides=False)),
        ("pro", False, [], "free", TierDecision("free", decides=True)),
        # ... but never a tier that did not come from it (an operator's grant, another path)
        ("pro", False, [], "enterprise", None),
        # (the user is already on the tier another subscription gives: left as it is)
        ("enterprise", False, ["pro"], "pro", None),
    ],
)
def test_the_user_gets_the_best_tier_any_subscription_grants(
    subscription_tier: str, entitled: bool, other_tiers: list[str], user_tier: str, expected: TierDecision | None
) -> None:
    assert decide_tier(subscription_tier, entitled, other_tiers, user_tier) == expected


def test_a_tier_the_product_does_not_sell_is_never_granted() -> None:
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        decide_tier("gold", True, [], "free")
    # an unknown tier among the others ranks below every real one
    assert decide_tier("pro", True, ["gold"], "free") == TierDecision("pro", decides=True)


# ---------------------------------------------------------------- reading Razorpay's bodies


def event_body(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "subscription.charged",
        "contains": ["subscription"],
        "payload": {
            "subscription": {
                "entity": {"id": "sub_F5Zb9kXdWfN1pq", "plan_id": "plan_X", "notes": {"user_id": USER}}
            }
        },
        "created_at": 1767225600,
    }
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (1767225600, 1767225600),
        (1767225600.0, 1767225600),
        ("1767225600", 1767225600),
        (" 1767225600 ", 1767225600),
    ],
)
def test_the_event_time_is_read_from_integers_integral_floats_and_digit_strings(
    created_at: Any, expected: int
) -> None:
    event = parse_event(event_body(created_at=created_at))
    assert event.created_at == expected
    assert event.occurred_at is not None and int(event.occurred_at.timestamp()) == expected


@pytest.mark.parametrize("created_at", [True, 1767225600.5, "soon", None, [1767225600]])
def test_an_unreadable_event_time_falls_back_to_the_payload_s(created_at: Any) -> None:
    body = event_body(created_at=created_at)
    document = json.loads(body)
    document["payload"]["created_at"] = 1767225000
    assert parse_event(json.dumps(document).encode()).created_at == 1767225000
    # and without one in the payload either, the event has no time (it is applied as of now)
    assert parse_event(body).created_at is None


def test_an_entity_that_does_not_fit_its_shape_is_named_unreadable_and_the_rest_is_read() -> None:
    document = json.loads(event_body())
    document["payload"]["payment"] = {"entity": {"id": ["not", "an", "id"], "amount": 100}}
    document["payload"]["invoice"] = "not an object"
    event = parse_event(json.dumps(document).encode())
    assert event.unreadable == ("payment", "invoice")
    assert event.payment is None and event.invoice is None
    assert event.subscription is not None and event.subscription.id == "sub_F5Zb9kXdWfN1pq"
    assert event.is_handled


@pytest.mark.parametrize("user_id", ["not-a-uuid", 42, None, ""])
def test_notes_without_a_readable_user_id_name_no_user(user_id: Any) -> None:
    document = json.loads(event_body())
    document["payload"]["subscription"]["entity"]["notes"] = {"user_id": user_id, "tier": "pro"}
    subscription = parse_event(json.dumps(document).encode()).subscription
    assert subscription is not None
    assert subscription.note_user_id is None
    assert subscription.note_tier == "pro"


def test_only_the_events_the_backend_acts_on_are_handled() -> None:
    assert parse_event(event_body(event="subscription.halted")).is_handled
    assert parse_event(event_body(event="payment.failed")).is_handled
    assert not parse_event(event_body(event="refund.created")).is_handled
    assert not parse_event(json.dumps({"payload": {}}).encode()).is_handled


def test_a_delivery_is_known_by_its_event_id_or_else_by_its_exact_bytes() -> None:
    body = event_body()
    assert delivery_id(" evt_F5ZbA0Jmcq3T ", body) == "evt_F5ZbA0Jmcq3T"
    by_body = delivery_id(None, body)
    assert by_body.startswith("sha256:") and delivery_id("   ", body) == by_body
    assert delivery_id(None, body + b" ") != by_body
    assert delivery_id("e" * MAX_EVENT_ID_LENGTH, body) == "e" * MAX_EVENT_ID_LENGTH
    with pytest.raises(BadRequestError, match="too long"):
        delivery_id("e" * (MAX_EVENT_ID_LENGTH + 1), body)


# ---------------------------------------------------------------- the sweeps' batch loop


@pytest.mark.parametrize("sweep", [end_expired_grace_periods, end_finished_cancellations])
@pytest.mark.parametrize("batch_size", [0, -1, True, 2.5, "10"])
def test_a_sweep_refuses_a_batch_size_that_is_not_a_whole_positive_number(sweep: Any, batch_size: Any) -> None:
    database = Database(get_settings())  # never connected: the size is checked first
    with pytest.raises(ValueError, match="batch_size"):
        sweep(database, batch_size=batch_size)
    database.close()


# ---------------------------------------------------------------- the tiers


def test_each_tier_and_its_quota_limits_are_read_from_the_one_table_of_tiers() -> None:
    for name in TIER_NAMES:
        assert tier(name) is TIERS[name]
        for key in QUOTA_KEYS:
            assert quota_limit(name, key) is TIERS[name].quotas[key]
    assert (quota_limit("pro", "large_messages").limit, quota_limit("pro", "large_messages").reset_frequency) == (
        100,
        "monthly",
    )
    assert quota_limit("free", "image_generation").reset_frequency == "3hour"


@pytest.mark.parametrize("deep", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_a_signed_body_nested_too_deep_for_the_parser_is_malformed_not_a_crash(deep: bytes) -> None:
    # GIVEN a verified body no parser can read (Python's gives up with RecursionError, not ValueError)
    # WHEN it is read THEN it is the 400 of a malformed event, which Razorpay is not asked to retry for a day
    with pytest.raises(BadRequestError):
        parse_event(deep)
