"""The Razorpay webhooks function, called as AWS calls it (a Function URL payload v2 event, built by the
local server's own builder) against the test database: signatures, exactly-once effects, order
independence, adoption, the tier rules with their sweeps, and PaymentFailed on EventBridge (moto).

Bodies come from Razorpay's published samples (`tests/fixtures/razorpay/docs_webhooks/`, the
repository's byte-for-byte copy), signed here with HMAC-SHA256 over their exact bytes. Scenario bodies are
those samples with a fresh subscription id per test, our notes (`user_id`, `tier`) and chosen times.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.apigw import HttpRequest, build_function_url_event
from local.fake_razorpay import FIXTURES_DIR
from oneai.billing.grace import end_expired_grace_periods
from oneai.billing.period_end import end_finished_cancellations
from oneai.billing.razorpay_events import parse_event
from oneai.billing.webhooks import (
    EVENT_RANK,
    SubscriptionChange,
    SubscriptionState,
    apply_change,
    entitles,
    signature_matches,
)
from oneai.config import override_settings
from oneai.database import get_database
from oneai.db import webhooks as repo
from oneai.db.connection import Database
from oneai.logging import logger
from tests.aws_support import Received, captured_events
from tests.conftest import REPO_ROOT

DOCS_WEBHOOKS = FIXTURES_DIR / "docs_webhooks"
FIXTURE_FILES = sorted(DOCS_WEBHOOKS.glob("*.json"))
assert FIXTURE_FILES, f"Razorpay's sample webhook bodies are missing from {DOCS_WEBHOOKS}"

SECRET = "whsec-test-current-0123456789"
PREVIOUS_SECRET = "whsec-test-previous-9876543210"
PRO_PLAN = "plan_TestProMonthly"
ENTERPRISE_PLAN = "plan_TestEnterprise"
PLAN_IDS = f"pro={PRO_PLAN},enterprise={ENTERPRISE_PLAN}"
BUS = "oneai-test-billing-bus"
DAY = 86_400
ACTIVATED_FIXTURE = "subscription.activated__future_start_date_and_no_upfront_amount.json"


class FakeLambdaContext:
    function_name = "WebhooksFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-south-1:123456789012:function:WebhooksFunction"
    aws_request_id = "5f1c2a9e-0d3b-4c7e-8a61-2b9d4e7f0c13"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def url_event(
    body: bytes,
    *,
    signature: str | None,
    event_id: str | None,
    as_base64: bool = False,
    method: str = "POST",
) -> dict[str, Any]:
    headers = [("Host", "abcdefgh.lambda-url.ap-south-1.on.aws"), ("Content-Type", "application/json")]
    headers.append(("User-Agent", "Razorpay-Webhook/v1"))
    if signature is not None:
        headers.append(("X-Razorpay-Signature", signature))
    if event_id is not None:
        headers.append(("X-Razorpay-Event-Id", event_id))
    event = build_function_url_event(HttpRequest(method, "/", headers=headers, body=body))
    if as_base64 and body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


Deliver = Callable[..., Answer]


@pytest.fixture
def deliver(database_url: str) -> Iterator[Deliver]:
    """POST a body to the deployed entry point, signed with the current secret unless told otherwise."""
    from webhooks.handler import lambda_handler

    with override_settings(
        database_url=SecretStr(database_url),
        razorpay_webhook_secret=SecretStr(SECRET),
        razorpay_webhook_secret_previous=None,
        razorpay_plan_ids=PLAN_IDS,
        event_bus_name=None,
    ):

        def post(
            body: bytes,
            *,
            event_id: str | None = "auto",
            signature: str | None = "auto",
            secret: str = SECRET,
            as_base64: bool = False,
            method: str = "POST",
        ) -> Answer:
            event = url_event(
                body,
                signature=sign(body, secret) if signature == "auto" else signature,
                event_id=f"evt_{uuid.uuid4().hex[:14]}" if event_id == "auto" else event_id,
                as_base64=as_base64,
                method=method,
            )
            result = lambda_handler(event, FakeLambdaContext())
            assert result["headers"]["content-type"] == "application/json"
            return Answer(result["statusCode"], json.loads(result["body"]))

        yield post


# ---------------------------------------------------------------------------------------------- data


def admin(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row)


COUNTS = """
select (select count(*) from public.processed_webhook_events) as processed_webhook_events,
       (select count(*) from public.subscriptions) as subscriptions,
       (select count(*) from public.subscription_history) as subscription_history,
       (select count(*) from public.users) as users"""


def table_counts(database_url: str) -> dict[str, int]:
    with admin(database_url) as conn:
        row = conn.execute(COUNTS).fetchone()
    assert row is not None
    return dict(row)


def new_user(database_url: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    with admin(database_url) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:10]}@wh.test")
        )
    return user_id


def user_row(database_url: str, user_id: uuid.UUID) -> dict[str, Any]:
    with admin(database_url) as conn:
        row = conn.execute(
            "select subscription_tier, subscription_status from public.users where id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    return row


def subscription_row(database_url: str, provider_subscription_id: str) -> dict[str, Any] | None:
    with admin(database_url) as conn:
        return conn.execute(
            "select * from public.subscriptions where provider_subscription_id = %s", (provider_subscription_id,)
        ).fetchone()


def history(database_url: str, user_id: uuid.UUID) -> list[dict[str, Any]]:
    with admin(database_url) as conn:
        return conn.execute(
            "select old_tier, new_tier, change_reason, subscription_id, metadata from public.subscription_history"
            " where user_id = %s order by changed_at, id",
            (user_id,),
        ).fetchall()


def processed(database_url: str, event_id: str) -> dict[str, Any] | None:
    with admin(database_url) as conn:
        return conn.execute(
            "select * from public.processed_webhook_events where event_id = %s", (event_id,)
        ).fetchone()


def quota(database_url: str, user_id: uuid.UUID, key: str = "small_messages") -> dict[str, Any]:
    with admin(database_url) as conn:
        row = conn.execute(
            "select used_count, quota_limit from public.usage_quotas where user_id = %s and quota_key = %s",
            (user_id, key),
        ).fetchone()
    assert row is not None
    return row


def fixture_json(name: str) -> dict[str, Any]:
    path = DOCS_WEBHOOKS / name
    assert path.is_file(), f"Razorpay sample body {name} is missing from {DOCS_WEBHOOKS}"
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def body_of(document: dict[str, Any]) -> bytes:
    # Non-ASCII kept as UTF-8, like Razorpay sends it: the signature is over these bytes.
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Scenario:
    """One test's subscription: a fresh Razorpay id whose notes name a fresh user."""

    user_id: uuid.UUID
    subscription_id: str
    base: int  # unix seconds, a little in the past

    def body(
        self,
        event: str,
        *,
        at: int,
        plan_id: str = PRO_PLAN,
        period: tuple[int, int] | None = None,
        notes: dict[str, Any] | None = None,
        fixture: str | None = None,
    ) -> bytes:
        default = ACTIVATED_FIXTURE if event == "subscription.activated" else f"{event}.json"
        document = copy.deepcopy(fixture_json(fixture or default))
        document["created_at"] = at
        document["payload"].pop("created_at", None)
        entity = document["payload"]["subscription"]["entity"]
        start, end = period or (self.base, self.base + 30 * DAY)
        entity.update(
            id=self.subscription_id,
            plan_id=plan_id,
            current_start=start,
            current_end=end,
            customer_id=f"cust_{self.subscription_id[4:]}",
            notes={"user_id": str(self.user_id), "tier": "pro"} if notes is None else notes,
        )
        return body_of(document)


@pytest.fixture
def scenario(database_url: str) -> Callable[[], Scenario]:
    def make() -> Scenario:
        return Scenario(new_user(database_url), f"sub_T{uuid.uuid4().hex[:13]}", int(time.time()) - 3600)

    return make


# ---------------------------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_published_body_signed_is_answered_200_and_recorded(
    deliver: Deliver, database_url: str, path: Path
) -> None:
    body = path.read_bytes()
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    answer = deliver(body, event_id=event_id)
    assert (answer.status, answer.body) == (200, {"status": "ok"})
    row = processed(database_url, event_id)
    assert row is not None
    assert (row["provider"], row["event_type"]) == ("razorpay", json.loads(body)["event"])
    # none of the samples names one of our users: nothing but the record
    subscription = json.loads(body)["payload"].get("subscription")
    if subscription:
        assert row["provider_subscription_id"] == subscription["entity"]["id"]
        assert subscription_row(database_url, subscription["entity"]["id"]) is None


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_published_body_with_one_byte_changed_is_400_and_writes_nothing(
    deliver: Deliver, database_url: str, path: Path
) -> None:
    body = path.read_bytes()
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 0x01
    before = table_counts(database_url)
    answer = deliver(bytes(tampered), signature=sign(body))
    assert answer.status == 400
    assert answer.body["error"]["code"] == "BAD_REQUEST" and answer.body["error"]["details"] == {}
    assert table_counts(database_url) == before


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_published_body_without_a_signature_is_400_and_writes_nothing(
    deliver: Deliver, database_url: str, path: Path
) -> None:
    before = table_counts(database_url)
    answer = deliver(path.read_bytes(), signature=None)
    assert (answer.status, answer.body["error"]["code"]) == (400, "BAD_REQUEST")
    assert table_counts(database_url) == before


def test_during_a_rotation_the_previous_secret_is_accepted_and_an_unrelated_one_is_not(
    deliver: Deliver, database_url: str
) -> None:
    body = (DOCS_WEBHOOKS / "subscription.charged.json").read_bytes()
    # before the rotation only the current secret works
    assert deliver(body, secret=PREVIOUS_SECRET).status == 400
    with override_settings(razorpay_webhook_secret_previous=SecretStr(PREVIOUS_SECRET)):
        assert deliver(body, secret=SECRET).status == 200
        assert deliver(body, secret=PREVIOUS_SECRET).status == 200
        before = table_counts(database_url)
        assert deliver(body, secret="whsec-someone-else").status == 400
        assert deliver(body, signature=sign(body).upper()).status == 200  # hex case does not matter
        assert deliver(body, signature="").status == 400
        assert table_counts(database_url)["processed_webhook_events"] == before["processed_webhook_events"] + 1


def test_a_base64_encoded_body_is_verified_over_its_decoded_bytes(deliver: Deliver, database_url: str) -> None:
    body = fixture_json("subscription.activated__future_start_date_and_no_upfront_amount.json")
    raw = body_of(body)
    assert any(b > 127 for b in raw)  # "Earl Grey…": the signature covers UTF-8 bytes
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    assert deliver(raw, event_id=event_id, as_base64=True).status == 200
    assert processed(database_url, event_id) is not None
    broken = url_event(raw, signature=sign(raw), event_id="evt_b64broken", as_base64=True)
    broken["body"] = "***not base64***"
    from webhooks.handler import lambda_handler

    assert lambda_handler(broken, FakeLambdaContext())["statusCode"] == 400
    assert processed(database_url, "evt_b64broken") is None


@pytest.mark.parametrize(
    "body", [b"not json", b"", b"[1, 2]", b'"text"', '{"a": "\udcff"}'.encode(errors="surrogateescape")]
)
def test_a_signed_body_that_is_not_a_json_object_is_400_and_writes_nothing(
    deliver: Deliver, database_url: str, body: bytes
) -> None:
    before = table_counts(database_url)
    answer = deliver(body)
    assert (answer.status, answer.body["error"]["code"]) == (400, "BAD_REQUEST")
    assert table_counts(database_url) == before


def test_an_event_we_do_not_handle_is_acknowledged_and_recorded(deliver: Deliver, database_url: str) -> None:
    body = body_of(
        {"entity": "event", "event": "refund.created", "payload": {"refund": {"entity": {"id": "rfnd_1"}}}}
    )
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    assert deliver(body, event_id=event_id) == Answer(200, {"status": "ok"})
    row = processed(database_url, event_id)
    assert row is not None and (row["event_type"], row["provider_subscription_id"]) == ("refund.created", None)
    assert deliver(body, event_id=event_id) == Answer(200, {"status": "ok"})  # and a repeat is fine


def test_only_post_is_served(deliver: Deliver) -> None:
    answer = deliver(b"", method="GET", signature=None)
    assert (answer.status, answer.body["error"]["code"]) == (404, "NOT_FOUND")


def test_without_a_configured_secret_nothing_is_accepted_and_razorpay_retries(
    deliver: Deliver, database_url: str
) -> None:
    with override_settings(razorpay_webhook_secret=None):
        before = table_counts(database_url)
        answer = deliver(b'{"event": "subscription.charged"}')
        assert (answer.status, answer.body["error"]["code"]) == (503, "UNAVAILABLE")
        assert table_counts(database_url) == before


def test_a_database_that_is_down_is_503_so_that_razorpay_retries(deliver: Deliver) -> None:
    with override_settings(
        database_url=SecretStr("postgresql://oneai@127.0.0.1:1/nowhere"), db_connect_timeout_seconds=1
    ):
        answer = deliver(b'{"event": "subscription.charged"}')
    assert (answer.status, answer.body["error"]["code"]) == (503, "UNAVAILABLE")
    assert "Traceback" not in json.dumps(answer.body)


def test_the_constant_time_check_needs_one_matching_secret() -> None:
    body = b'{"a": 1}'
    assert signature_matches(body, sign(body, "b"), [b"a", b"b"])
    assert not signature_matches(body, sign(body, "c"), [b"a", b"b"])
    assert not signature_matches(body, None, [b"a"])
    assert not signature_matches(body, "zz\u00e9", [b"a"])  # not even hex


# ---------------------------------------------------------------------------------------------- once


def test_the_same_event_delivered_five_times_at_once_has_one_effect(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    body = s.body("subscription.activated", at=s.base)
    deliver(body_of({"event": "warm.up"}))  # the container's database exists before the race
    barrier = threading.Barrier(5)
    answers: list[Answer] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(timeout=10)
            answers.append(deliver(body, event_id=f"evt_same_{s.subscription_id}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answers == [Answer(200, {"status": "ok"})] * 5
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["new_subscription"]
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "active"}
    with admin(database_url) as conn:
        assert conn.execute(
            "select count(*) as n from public.subscriptions where provider_subscription_id = %s",
            (s.subscription_id,),
        ).fetchone() == {"n": 1}
    # and later redeliveries of it change nothing either
    assert deliver(body, event_id=f"evt_same_{s.subscription_id}").status == 200
    assert len(history(database_url, s.user_id)) == 1


def test_different_events_of_a_new_subscription_at_once_adopt_it_once(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    bodies = [
        s.body("subscription.authenticated", at=s.base),
        s.body("subscription.activated", at=s.base + 1),
        s.body("subscription.charged", at=s.base + 2),
        s.body("subscription.charged", at=s.base + 3, period=(s.base + 30 * DAY, s.base + 60 * DAY)),
    ]
    deliver(body_of({"event": "warm.up"}))
    barrier = threading.Barrier(len(bodies))
    answers: list[Answer] = []

    def one(body: bytes) -> None:
        barrier.wait(timeout=10)
        answers.append(deliver(body))

    threads = [threading.Thread(target=one, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status for a in answers] == [200] * len(bodies)
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and row["status"] == "active"
    assert row["paid_until"] == datetime.fromtimestamp(s.base + 60 * DAY, tz=UTC)
    assert row["last_event_rank"] == EVENT_RANK["subscription.charged"]
    assert row["last_event_at"] == datetime.fromtimestamp(s.base + 3, tz=UTC)
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["new_subscription"]


def test_without_an_event_id_a_redelivery_of_the_same_bytes_is_a_duplicate(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    body = s.body("subscription.charged", at=s.base)
    assert deliver(body, event_id=None).status == 200
    assert deliver(body, event_id=None).status == 200
    assert processed(database_url, "sha256:" + hashlib.sha256(body).hexdigest()) is not None
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["new_subscription"]


# ---------------------------------------------------------------------------------------------- order

ORDER = ("activated", "charged", "pending", "cancelled")


def test_every_order_of_activated_charged_pending_cancelled_ends_in_the_same_state(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    finals = []
    for order in itertools.permutations(ORDER):
        s = scenario()
        # logical times: activated < charged < pending < cancelled; charged pays a second period
        times = {name: s.base + 10 * i for i, name in enumerate(ORDER)}
        periods = {
            "activated": (s.base, s.base + 30 * DAY),
            "charged": (s.base + 30 * DAY, s.base + 60 * DAY),
            "pending": (s.base + 60 * DAY, s.base + 90 * DAY),
            "cancelled": (s.base + 60 * DAY, s.base + 90 * DAY),
        }
        for name in order:
            fixture = (
                "subscription.activated__immediate_start_date_upfront_amount_both.json"
                if name == "activated"
                else None
            )
            answer = deliver(s.body(f"subscription.{name}", at=times[name], period=periods[name], fixture=fixture))
            assert answer.status == 200, (order, name, answer)
        row = subscription_row(database_url, s.subscription_id)
        assert row is not None, order
        state = {
            key: row[key]
            for key in (
                "status", "tier", "plan_id", "current_period_start", "current_period_end", "paid_until",
                "grace_until", "last_event_at", "last_event_rank", "canceled_at", "cancel_at_period_end",
            )
        }  # fmt: skip
        # relative to the scenario's own times, so that the 24 can be compared
        base = datetime.fromtimestamp(s.base, tz=UTC)
        state = {k: v - base if isinstance(v, datetime) else v for k, v in state.items()}
        assert row["access_ended_at"] is not None, order
        reasons = [h["change_reason"] for h in history(database_url, s.user_id)]
        finals.append((order, state, user_row(database_url, s.user_id), reasons))

    first_state = finals[0][1]
    assert (
        first_state["status"] == "cancelled"
        and first_state["last_event_rank"] == EVENT_RANK["subscription.cancelled"]
    )
    assert first_state["paid_until"] == timedelta(days=60)  # the charged period, whatever came when
    assert first_state["grace_until"] is None
    for order, state, user, reasons in finals:
        assert state == first_state, order
        assert user == {"subscription_tier": "free", "subscription_status": "cancelled"}, order
        # The history is the log of what the user actually had: pro from the first event that granted
        # it until the cancellation. Only when the cancellation came first was pro never granted.
        expected = [] if order[0] == "cancelled" else ["new_subscription", "cancellation"]
        assert reasons == expected, order


def test_an_older_event_never_undoes_a_newer_one(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    # GIVEN a renewal charged at t2 for the second period
    charged = s.body("subscription.charged", at=s.base + 20, period=(s.base + 30 * DAY, s.base + 60 * DAY))
    assert deliver(charged).status == 200
    # WHEN the activation of t1 (first period) arrives late, and a late authenticated too
    activated = s.body(
        "subscription.activated",
        at=s.base + 10,
    )
    assert deliver(activated).status == 200
    assert deliver(s.body("subscription.authenticated", at=s.base)).status == 200
    # THEN it is still active, paid until the end of t2's period, with t2's key
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None
    assert row["status"] == "active"
    assert row["paid_until"] == datetime.fromtimestamp(s.base + 60 * DAY, tz=UTC)
    assert row["current_period_end"] == datetime.fromtimestamp(s.base + 60 * DAY, tz=UTC)
    assert (row["last_event_at"], row["last_event_rank"]) == (
        datetime.fromtimestamp(s.base + 20, tz=UTC),
        EVENT_RANK["subscription.charged"],
    )
    # AND in the same second, the rank decides: a halted beats a charged of that second, whichever first
    halted = s.body("subscription.halted", at=s.base + 30)
    charged_same_second = s.body(
        "subscription.charged", at=s.base + 30, period=(s.base + 30 * DAY, s.base + 61 * DAY)
    )
    assert deliver(halted).status == 200
    assert deliver(charged_same_second).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and row["status"] == "halted"
    # the money still counts: paid_until moves forward, never back
    assert row["paid_until"] == datetime.fromtimestamp(s.base + 61 * DAY, tz=UTC)
    assert user_row(database_url, s.user_id)["subscription_tier"] == "free"


def test_nothing_reactivates_a_cancelled_subscription(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.activated", at=s.base)).status == 200
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200
    # a newer charged or resumed (Razorpay sends none after a cancellation; a replay could)
    assert deliver(s.body("subscription.resumed", at=s.base + 20)).status == 200
    assert deliver(s.body("subscription.charged", at=s.base + 30)).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and row["status"] == "cancelled"
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "cancelled"}
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["new_subscription", "cancellation"]


# ---------------------------------------------------------------------------------------------- adoption


def test_a_subscription_whose_notes_name_our_user_is_adopted(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    body = s.body(
        "subscription.activated",
        at=s.base,
    )
    assert deliver(body, event_id=event_id).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None
    assert (row["user_id"], row["tier"], row["plan_id"], row["status"]) == (s.user_id, "pro", PRO_PLAN, "active")
    assert row["provider_customer_id"] == f"cust_{s.subscription_id[4:]}"
    assert row["metadata"] == {"adopted_from_event": event_id}
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "active"}
    [entry] = history(database_url, s.user_id)
    assert (entry["old_tier"], entry["new_tier"], entry["change_reason"]) == ("free", "pro", "new_subscription")
    assert entry["subscription_id"] == row["id"]
    assert entry["metadata"]["event_id"] == event_id
    assert quota(database_url, s.user_id)["quota_limit"] == 500  # pro's small_messages


def test_an_unknown_plan_takes_the_tier_from_the_notes(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    body = s.body("subscription.charged", at=s.base, plan_id="plan_NotConfigured")
    assert deliver(body).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and (row["tier"], row["plan_id"]) == ("pro", "plan_NotConfigured")
    # without a tier anywhere it cannot be adopted: recorded only
    t = scenario()
    body = t.body(
        "subscription.charged", at=t.base, plan_id="plan_NotConfigured", notes={"user_id": str(t.user_id)}
    )
    assert deliver(body).status == 200
    assert subscription_row(database_url, t.subscription_id) is None


def test_an_unknown_subscription_that_is_not_ours_is_only_recorded(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    before = table_counts(database_url)
    for notes in (
        {"Important": "Notes for Internal Reference"},
        [],
        {"user_id": str(uuid.uuid4()), "tier": "pro"},
    ):
        event_id = f"evt_{uuid.uuid4().hex[:14]}"
        body = s.body("subscription.activated", at=s.base, notes=notes)
        assert deliver(body, event_id=event_id).status == 200
        row = processed(database_url, event_id)
        assert row is not None and row["provider_subscription_id"] == s.subscription_id
    after = table_counts(database_url)
    assert after["processed_webhook_events"] == before["processed_webhook_events"] + 3
    assert (after["subscriptions"], after["subscription_history"]) == (
        before["subscriptions"],
        before["subscription_history"],
    )


# ---------------------------------------------------------------------------------------------- tier rules


def test_pending_keeps_pro_through_the_grace_period_then_the_sweep_downgrades(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    pending_at = s.base + 100
    assert deliver(s.body("subscription.pending", at=pending_at)).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and row["status"] == "pending"
    assert row["grace_until"] == datetime.fromtimestamp(pending_at, tz=UTC) + timedelta(days=3)
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "pending"}
    # a second pending (another retry failed) does not extend the grace period
    assert deliver(s.body("subscription.pending", at=pending_at + 50)).status == 200
    again = subscription_row(database_url, s.subscription_id)
    assert again is not None and again["grace_until"] == row["grace_until"]
    # WHEN the grace period has run out, the quota-reset sweep ends it
    with admin(database_url) as conn:
        conn.execute(
            "update public.subscriptions set grace_until = now() - interval '1 minute' where id = %s", (row["id"],)
        )
    assert end_expired_grace_periods(get_database()) >= 1
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "halted"}
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == [
        "new_subscription",
        "payment_failure",
    ]
    # AND the halted that Razorpay sends afterwards changes nothing more
    assert deliver(s.body("subscription.halted", at=pending_at + 3 * DAY)).status == 200
    assert len(history(database_url, s.user_id)) == 2


def test_a_pending_that_arrives_after_its_grace_period_downgrades_at_once(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    long_ago = s.base - 10 * DAY
    assert deliver(s.body("subscription.charged", at=long_ago)).status == 200
    assert deliver(s.body("subscription.pending", at=long_ago + 100)).status == 200
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "pending"}
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == [
        "new_subscription",
        "payment_failure",
    ]


def test_cancel_at_cycle_end_keeps_pro_until_paid_until_then_the_period_end_sweep_downgrades(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    # the billing API recorded a cancellation at the end of the cycle
    with admin(database_url) as conn:
        conn.execute(
            "update public.subscriptions set cancel_at_period_end = true where provider_subscription_id = %s",
            (s.subscription_id,),
        )
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None and row["status"] == "cancelled" and row["access_ended_at"] is None
    assert row["paid_until"] == datetime.fromtimestamp(s.base + 30 * DAY, tz=UTC)
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "cancelled"}
    db = get_database()
    end_finished_cancellations(db)
    assert user_row(database_url, s.user_id)["subscription_tier"] == "pro"  # not yet
    # WHEN the paid period is over
    with admin(database_url) as conn:
        conn.execute(
            "update public.subscriptions set paid_until = now() - interval '1 second' where id = %s", (row["id"],)
        )
    assert end_finished_cancellations(db) >= 1
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "cancelled"}
    reasons = [h["change_reason"] for h in history(database_url, s.user_id)]
    assert reasons == ["new_subscription", "cancellation"]
    ended = subscription_row(database_url, s.subscription_id)
    assert ended is not None and ended["access_ended_at"] is not None
    assert end_finished_cancellations(db) == 0  # each period ends once
    # a late redelivery of the cancellation does not bring the tier back either
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "free"


def test_the_quota_reset_run_ends_finished_cancellations_and_reports_them(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    from quota_reset.handler import lambda_handler as quota_reset

    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    with admin(database_url) as conn:
        conn.execute(
            "update public.subscriptions set cancel_at_period_end = true where provider_subscription_id = %s",
            (s.subscription_id,),
        )
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200
    with admin(database_url) as conn:
        conn.execute(
            "update public.subscriptions set paid_until = now() - interval '1 second'"
            " where provider_subscription_id = %s",
            (s.subscription_id,),
        )
    event = json.loads((REPO_ROOT / "events" / "quota_reset" / "daily.json").read_text())

    class Context(FakeLambdaContext):
        function_name = "QuotaResetFunction"

        def get_remaining_time_in_millis(self) -> int:
            return 300_000

    result = quota_reset(event, Context())
    assert result["cancellations_ended"] == 1
    assert user_row(database_url, s.user_id)["subscription_tier"] == "free"


def test_a_cancellation_downgrades_at_once_and_completed_too(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    for final in ("cancelled", "completed"):
        s = scenario()
        assert deliver(s.body("subscription.charged", at=s.base)).status == 200
        assert deliver(s.body(f"subscription.{final}", at=s.base + 10)).status == 200
        assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": final}
        assert [h["change_reason"] for h in history(database_url, s.user_id)] == [
            "new_subscription",
            "cancellation",
        ]


def test_halted_downgrades_keeping_usage_and_a_later_charge_reactivates_with_fresh_usage(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    with admin(database_url) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = 42 where user_id = %s and quota_key = 'small_messages'",
            (s.user_id,),
        )
    assert deliver(s.body("subscription.halted", at=s.base + 10)).status == 200
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "halted"}
    assert quota(database_url, s.user_id) == {"used_count": 42, "quota_limit": 100}  # kept under free limits
    assert deliver(s.body("subscription.charged", at=s.base + 20)).status == 200
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "active"}
    assert quota(database_url, s.user_id) == {"used_count": 0, "quota_limit": 500}  # an upgrade starts afresh
    reasons = [h["change_reason"] for h in history(database_url, s.user_id)]
    assert reasons == ["new_subscription", "payment_failure", "upgrade"]


def test_a_plan_change_moves_the_tier_and_paused_then_resumed_comes_back(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    assert deliver(s.body("subscription.updated", at=s.base + 10, plan_id=ENTERPRISE_PLAN)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "enterprise"
    assert deliver(s.body("subscription.updated", at=s.base + 20, plan_id=PRO_PLAN)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "pro"
    assert deliver(s.body("subscription.paused", at=s.base + 30)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "free"
    assert deliver(s.body("subscription.resumed", at=s.base + 40)).status == 200
    assert user_row(database_url, s.user_id) == {"subscription_tier": "pro", "subscription_status": "active"}
    reasons = [h["change_reason"] for h in history(database_url, s.user_id)]
    assert reasons == ["new_subscription", "upgrade", "downgrade", "downgrade", "upgrade"]


def test_another_subscription_keeps_the_tier_when_one_ends(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    other = Scenario(s.user_id, f"sub_T{uuid.uuid4().hex[:13]}", s.base)
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    assert deliver(other.body("subscription.charged", at=s.base + 5, plan_id=ENTERPRISE_PLAN)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "enterprise"
    # the pro one is cancelled: the enterprise one still decides
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200
    assert user_row(database_url, s.user_id) == {
        "subscription_tier": "enterprise",
        "subscription_status": "active",
    }
    # the enterprise one is halted: nothing grants anything any more
    assert deliver(other.body("subscription.halted", at=s.base + 20, plan_id=ENTERPRISE_PLAN)).status == 200
    assert user_row(database_url, s.user_id) == {"subscription_tier": "free", "subscription_status": "halted"}


def test_a_subscription_that_grants_nothing_takes_away_only_a_tier_it_gave(
    deliver: Deliver, database_url: str, db: Database, scenario: Callable[[], Scenario]
) -> None:
    from oneai.billing.tier_change import change_tier

    s = scenario()
    with db.service_transaction() as conn:  # e.g. an operator's grant, not a subscription's
        change_tier(conn, user_id=s.user_id, new_tier="enterprise", reason="system")
    for event, at in (("authenticated", s.base), ("halted", s.base + 10), ("cancelled", s.base + 20)):
        assert deliver(s.body(f"subscription.{event}", at=at)).status == 200
    assert user_row(database_url, s.user_id) == {
        "subscription_tier": "enterprise",
        "subscription_status": "active",
    }
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["system"]


def test_invoice_paid_moves_paid_until_forward_only(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    document = copy.deepcopy(fixture_json("invoice.paid__card.json"))
    invoice = document["payload"]["invoice"]["entity"]
    for billing_end, expected in ((s.base + 45 * DAY, s.base + 45 * DAY), (s.base + DAY, s.base + 45 * DAY)):
        invoice.update(subscription_id=s.subscription_id, billing_start=s.base, billing_end=billing_end)
        assert deliver(body_of(document)).status == 200
        row = subscription_row(database_url, s.subscription_id)
        assert row is not None and row["paid_until"] == datetime.fromtimestamp(expected, tz=UTC)
        assert row["last_event_rank"] == EVENT_RANK["subscription.charged"]  # no status event


# ---------------------------------------------------------------------------------------------- PaymentFailed


@pytest.fixture
def eventbridge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """A moto EventBridge bus whose oneai.billing events are read back."""
    with captured_events(monkeypatch, bus=BUS, source="oneai.billing") as received:
        yield received


def test_a_failed_payment_publishes_payment_failed_once_without_card_data(
    deliver: Deliver,
    database_url: str,
    scenario: Callable[[], Scenario],
    eventbridge: Callable[[], list[dict[str, Any]]],
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    document = copy.deepcopy(fixture_json("payment.failed__card.json"))
    payment = document["payload"]["payment"]["entity"]
    payment["customer_id"] = f"cust_{s.subscription_id[4:]}"  # the subscription's customer
    payment["error_code"], payment["error_description"] = "BAD_REQUEST_ERROR", "Your card was declined."
    body = body_of(document)
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    with override_settings(event_bus_name=BUS):
        assert deliver(body, event_id=event_id).status == 200
        assert deliver(body, event_id=event_id).status == 200  # a redelivery publishes nothing more
    [event] = eventbridge()
    assert (event["source"], event["detail-type"]) == ("oneai.billing", "PaymentFailed")
    detail = event["detail"]
    row = subscription_row(database_url, s.subscription_id)
    assert row is not None
    assert detail == {
        "user_id": str(s.user_id),
        "subscription_id": str(row["id"]),
        "provider_subscription_id": s.subscription_id,
        "payment_id": payment["id"],
        "amount": payment["amount"],
        "currency": "INR",
        "method": "card",
        "error_code": "BAD_REQUEST_ERROR",
        "error_description": "Your card was declined.",
        "error_reason": None,
        "failed_at": datetime.fromtimestamp(document["created_at"], tz=UTC).isoformat(),
        # not in its grace period yet: the one this failure starts (failed_at + ONEAI_GRACE_PERIOD_DAYS)
        "grace_until": (datetime.fromtimestamp(document["created_at"], tz=UTC) + timedelta(days=3)).isoformat(),
        "event_id": event_id,
    }
    text = json.dumps(event)
    assert "last4" not in text and payment["card"]["last4"] not in text and payment["email"] not in text
    record = processed(database_url, event_id)
    assert record is not None and record["provider_subscription_id"] == s.subscription_id
    # the tier is not the payment's business (pending and halted are)
    assert user_row(database_url, s.user_id)["subscription_tier"] == "pro"


def test_a_failed_payment_of_our_user_by_notes_is_published_and_a_strangers_is_only_recorded(
    deliver: Deliver, database_url: str, eventbridge: Callable[[], list[dict[str, Any]]]
) -> None:
    user_id = new_user(database_url)
    document = copy.deepcopy(fixture_json("payment.failed__upi.json"))
    with override_settings(event_bus_name=BUS):
        assert deliver(body_of(document)).status == 200  # nobody we know
        document["payload"]["payment"]["entity"]["notes"] = {"user_id": str(user_id)}
        assert deliver(body_of(document)).status == 200
    [event] = eventbridge()
    assert event["detail"]["user_id"] == str(user_id) and event["detail"]["subscription_id"] is None


def test_an_unreachable_eventbridge_never_fails_the_webhook(
    deliver: Deliver, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = new_user(database_url)
    document = copy.deepcopy(fixture_json("payment.failed__netbanking.json"))
    document["payload"]["payment"]["entity"]["notes"] = {"user_id": str(user_id)}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:1")  # nothing listens there
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    with override_settings(event_bus_name=BUS):
        assert deliver(body_of(document), event_id=event_id).status == 200
    assert processed(database_url, event_id) is not None


# ---------------------------------------------------------------------------------------------- observability


def stdout_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def test_metrics_count_processed_events_by_type_and_rejections(
    deliver: Deliver, capsys: pytest.CaptureFixture[str], scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    capsys.readouterr()
    deliver(s.body("subscription.charged", at=s.base))
    deliver(body_of({"event": "refund.created"}))
    deliver(b"{}", signature="0" * 64)
    emf = [p for p in stdout_json(capsys.readouterr().out) if "_aws" in p]
    assert [(p.get("WebhooksProcessed"), p.get("event_type")) for p in emf if "WebhooksProcessed" in p] == [
        ([1.0], "subscription.charged"),
        ([1.0], "other"),
    ]
    [rejected] = [p for p in emf if "WebhooksRejected" in p]
    assert (rejected["reason"], rejected["_aws"]["CloudWatchMetrics"][0]["Namespace"]) == ("signature", "OneAI")


def test_logs_never_hold_bodies_signatures_or_secrets(
    deliver: Deliver, caplog: pytest.LogCaptureFixture, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    caplog.set_level(logging.DEBUG)
    body = s.body("subscription.charged", at=s.base)
    deliver(body, event_id="evt_logcheck_" + s.subscription_id)
    tampered = body.replace(b"active", b"activf")
    deliver(tampered, signature=sign(body))
    formatter = logger.registered_formatter
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "webhook processed" in text and "webhook rejected" in text
    for secret_or_body in (SECRET, sign(body), "Notes for Internal Reference", "Gaurav", "5558"):
        assert secret_or_body not in text


def test_the_sample_events_drive_the_handler_as_sam_local_invoke_would(database_url: str) -> None:
    """events/webhooks/*.json (Function URL events signed with the dev secret) against the dev user."""
    from webhooks.handler import lambda_handler

    from local import DEV_USER_EMAIL, DEV_USER_ID
    from local.events import DEV_RAZORPAY_WEBHOOK_SECRET, SAMPLE_SUBSCRIPTION_ID, WEBHOOK_SAMPLES

    with admin(database_url) as conn:  # a fresh dev user; the samples' events not seen yet
        conn.execute("delete from auth.users where id = %s", (DEV_USER_ID,))
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (DEV_USER_ID, DEV_USER_EMAIL))
        conn.execute(
            "delete from public.processed_webhook_events where event_id = any(%s)",
            ([sample.event_id for sample in WEBHOOK_SAMPLES.values()],),
        )
    events = REPO_ROOT / "events" / "webhooks"
    expected = [
        ("subscription-activated", 200, ("pro", "active")),
        ("payment-failed", 200, ("pro", "active")),
        ("bad-signature", 400, ("pro", "active")),
        ("subscription-cancelled", 200, ("free", "cancelled")),
    ]
    with override_settings(
        database_url=SecretStr(database_url),
        razorpay_webhook_secret=SecretStr(DEV_RAZORPAY_WEBHOOK_SECRET),
        event_bus_name=None,
    ):
        for name, status, (tier, user_status) in expected:
            event = json.loads((events / f"{name}.json").read_text(encoding="utf-8"))
            assert lambda_handler(event, FakeLambdaContext())["statusCode"] == status, name
            assert user_row(database_url, uuid.UUID(DEV_USER_ID)) == {
                "subscription_tier": tier,
                "subscription_status": user_status,
            }, name
    row = subscription_row(database_url, SAMPLE_SUBSCRIPTION_ID)
    assert row is not None and (row["status"], row["tier"]) == ("cancelled", "pro")


# ---------------------------------------------------------------------------------------------- the rules, bare


def test_the_sql_and_python_entitlement_rules_agree(db: Database, database_url: str) -> None:
    user_id = new_user(database_url)
    now = datetime.now(UTC)
    cases = [
        (status, grace, cycle_end, paid)
        for status in (
            "created",
            "authenticated",
            "active",
            "pending",
            "halted",
            "cancelled",
            "completed",
            "paused",
        )
        for grace in (None, now - timedelta(hours=1), now + timedelta(hours=1))
        for cycle_end in (False, True)
        for paid in (None, now - timedelta(hours=1), now + timedelta(hours=1))
    ]
    with db.service_transaction() as conn:
        for i, (status, grace, cycle_end, paid) in enumerate(cases):
            conn.execute(
                "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id,"
                " grace_until, cancel_at_period_end, paid_until) values (%s, 'p', 'pro', %s, %s, %s, %s, %s)",
                (user_id, status, f"sub_rule_{user_id.hex[:8]}_{i}", grace, cycle_end, paid),
            )
        rows = conn.execute(
            f"select s.provider_subscription_id as id, {repo.ENTITLES} as entitled, now() as now"  # noqa: S608 - a constant
            " from public.subscriptions s where s.user_id = %s",
            (user_id,),
        ).fetchall()
        conn.rollback()
    by_id = {r["id"]: r for r in rows}
    for i, (status, grace, cycle_end, paid) in enumerate(cases):
        row = by_id[f"sub_rule_{user_id.hex[:8]}_{i}"]
        state = SubscriptionState(
            status=status,
            plan_id="p",
            tier="pro",
            grace_until=grace,
            cancel_at_period_end=cycle_end,
            paid_until=paid,
        )
        assert entitles(state, row["now"]) == row["entitled"], (status, grace, cycle_end, paid)


def test_apply_change_is_pure_and_keys_compare_by_time_then_rank() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    state = SubscriptionState(status="active", plan_id="p", tier="pro", last_event_at=t, last_event_rank=3)
    grace = timedelta(days=3)

    def change(event: str, at: datetime, **kwargs: Any) -> SubscriptionChange:
        status = {"subscription.pending": "pending", "subscription.activated": "active"}[event]
        return SubscriptionChange(event, at, rank=EVENT_RANK[event], status=status, **kwargs)

    pending_same_second, applied = apply_change(
        state, change("subscription.pending", t), now=t, grace_period=grace
    )
    assert applied and pending_same_second.status == "pending" and pending_same_second.grace_until == t + grace
    activated_same_second, applied = apply_change(
        state, change("subscription.activated", t, paid_through=t + grace), now=t, grace_period=grace
    )
    assert not applied and activated_same_second.status == "active"
    assert activated_same_second.paid_until == t + grace  # the money counts even when the status does not
    assert state.paid_until is None  # the input is untouched


def test_the_sample_events_parse_with_their_quirks() -> None:
    assert FIXTURE_FILES, f"Razorpay sample bodies are expected at {DOCS_WEBHOOKS}"
    by_name = {p.name: parse_event(p.read_bytes()) for p in FIXTURE_FILES}
    assert all(e.unreadable == () for e in by_name.values())
    charged = by_name["subscription.charged.json"]
    assert charged.payment is not None and charged.payment.captured is True  # "captured": "1"
    assert charged.payment.notes == {}  # "notes": []
    immediate = by_name["subscription.activated__immediate_start_date_upfront_amount_both.json"]
    assert immediate.created_at == 1567690383  # inside "payload"
    authenticated = by_name["subscription.authenticated.json"]
    assert authenticated.subscription is not None and authenticated.subscription.current_end is None
    activated = by_name["subscription.activated__future_start_date_and_no_upfront_amount.json"]
    assert activated.subscription is not None and "Earl Grey…" in activated.subscription.notes["notes_key_2"]
    assert {e.event for e in by_name.values()} >= {"invoice.paid", "payment.failed", "subscription.halted"}
