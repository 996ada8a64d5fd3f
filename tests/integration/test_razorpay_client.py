"""The Razorpay wrapper (the official SDK underneath) against the fake Razorpay over a real socket, which
answers with the SDK's own mock bodies (no database needed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
from billing.app import build_app
from pydantic import SecretStr

from local.fake_razorpay import Delay, FakeRazorpay, Status, load_fixture
from oneai.billing.razorpay_client import (
    RazorpayClient,
    RazorpayRefusedError,
    build_razorpay_client,
    checkout_signature,
    from_epoch,
    get_razorpay_client,
)
from oneai.config import Settings, override_settings
from oneai.errors import UnavailableError, UpstreamError
from tests.conftest import token_for

pytestmark = pytest.mark.timeout(30)

KEY_ID = "rzp_test_W9x0a1b2c3d4e5"
KEY_SECRET = "test-razorpay-secret-never-shown-0123"
SHORT_TIMEOUT = 0.5
MOCK_SUBSCRIPTION = load_fixture("sdk_mocks/fake_subscription.json")
MOCK_INVOICES = load_fixture("sdk_mocks/invoice_collection.json")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRazorpay]:
    with FakeRazorpay(key_id=KEY_ID, key_secret=KEY_SECRET) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeRazorpay) -> Iterator[None]:
    fake.reset()
    yield
    fake.reset()


@pytest.fixture
def client(fake: FakeRazorpay) -> RazorpayClient:
    return RazorpayClient(
        key_id=KEY_ID, key_secret=KEY_SECRET, base_url=fake.base_url, timeout_seconds=SHORT_TIMEOUT
    )


def assert_generic(error: UpstreamError, operation: str, reason: str) -> None:
    assert (error.status, error.code) == (502, "UPSTREAM_ERROR")
    assert error.message == "The payment provider failed"
    assert error.details == {"provider": "razorpay", "operation": operation, "reason": reason}
    shown = json.dumps({"message": error.message, "details": error.details}) + str(error) + repr(error)
    assert KEY_SECRET not in shown and KEY_ID not in shown


# ---------------------------------------------------------------- the SDK's mock bodies, parsed


def test_given_a_create_then_the_mock_subscription_comes_back_with_our_plan_notes_and_count(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    # WHEN a subscription is created
    subscription = client.create_subscription(
        "plan_pro_123", total_count=120, notes={"user_id": "u-1", "tier": "pro"}, customer_notify=False
    )
    # THEN the answer is the SDK's mock subscription with what we sent, fresh and `created`
    assert subscription.id.startswith("sub_") and subscription.id != MOCK_SUBSCRIPTION["id"]
    assert (subscription.plan_id, subscription.status, subscription.total_count) == (
        "plan_pro_123",
        "created",
        120,
    )
    assert subscription.notes == {"user_id": "u-1", "tier": "pro"}
    assert subscription.short_url and subscription.short_url.startswith("https://rzp.io/")
    assert subscription.current_start is None and subscription.paid_count == 0
    # AND the request carried the documented fields as JSON, with HTTP Basic auth of our key
    (request,) = fake.requests_to("POST", "/v1/subscriptions")
    assert request.body == {
        "plan_id": "plan_pro_123",
        "total_count": 120,
        "customer_notify": False,
        "notes": {"user_id": "u-1", "tier": "pro"},
    }
    expected = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.headers["user-agent"].startswith("Razorpay-Python/")


def test_given_start_at_then_it_is_sent_and_echoed(fake: FakeRazorpay, client: RazorpayClient) -> None:
    start = int(time.time()) + 86_400
    subscription = client.create_subscription("plan_x", total_count=6, notes={}, start_at=start)
    assert subscription.start_at == start
    assert fake.requests_to("POST", "/v1/subscriptions")[0].body["start_at"] == start


def test_given_the_mock_id_then_fetch_parses_the_sdk_mock_exactly(client: RazorpayClient) -> None:
    subscription = client.fetch_subscription(MOCK_SUBSCRIPTION["id"])
    assert subscription.model_dump(
        include={"id", "plan_id", "status", "customer_id", "total_count", "paid_count"}
    ) == {
        key: MOCK_SUBSCRIPTION[key]
        for key in ("id", "plan_id", "status", "customer_id", "total_count", "paid_count")
    }
    # `notes: []` (Razorpay's empty notes) is an empty mapping; times stay Unix seconds
    assert subscription.notes == {}
    assert subscription.current_end == MOCK_SUBSCRIPTION["current_end"]
    assert from_epoch(subscription.current_end) == datetime.fromtimestamp(MOCK_SUBSCRIPTION["current_end"], UTC)


def test_given_cancel_now_or_at_cycle_end_then_the_answers_say_so(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    # GIVEN an active subscription (the mock)
    at_end = client.cancel_subscription(MOCK_SUBSCRIPTION["id"], at_cycle_end=True)
    # THEN a cancel at cycle end keeps it active
    assert at_end.status == "active" and at_end.ended_at is None
    now = client.cancel_subscription(MOCK_SUBSCRIPTION["id"], at_cycle_end=False)
    assert now.status == "cancelled" and now.ended_at is not None
    bodies = [r.body for r in fake.requests_to("POST", "/cancel")]
    assert bodies == [{"cancel_at_cycle_end": 1}, {"cancel_at_cycle_end": 0}]


def test_given_an_edit_then_the_plan_changes_now_or_is_scheduled(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    scheduled = client.edit_subscription(MOCK_SUBSCRIPTION["id"], plan_id="plan_b", schedule_change_at="cycle_end")
    assert scheduled.plan_id == MOCK_SUBSCRIPTION["plan_id"]
    assert scheduled.has_scheduled_changes and scheduled.change_scheduled_at == MOCK_SUBSCRIPTION["current_end"]
    now = client.edit_subscription(MOCK_SUBSCRIPTION["id"], plan_id="plan_b", schedule_change_at="now")
    assert now.plan_id == "plan_b" and not now.has_scheduled_changes
    (first, second) = fake.requests_to("PATCH", "/v1/subscriptions/")
    assert first.body == {"plan_id": "plan_b", "schedule_change_at": "cycle_end"}
    assert second.body == {"plan_id": "plan_b", "schedule_change_at": "now"}


def test_given_a_subscription_then_its_invoices_are_the_mock_collection(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    invoices = client.subscription_invoices(MOCK_SUBSCRIPTION["id"])
    assert [invoice.id for invoice in invoices] == [item["id"] for item in MOCK_INVOICES["items"]]
    first = invoices[0]
    assert (first.amount, first.currency, first.status, first.paid_at) == (100, "INR", "issued", None)
    assert first.issued_at == 1481541533 and first.short_url == "http://bit.ly/link"
    # AND the query asked for this subscription's invoices, a full page of them
    (request,) = fake.requests_to("GET", "/v1/invoices")
    assert request.query == {"subscription_id": MOCK_SUBSCRIPTION["id"], "count": "100"}


def test_given_the_api_reference_invoices_then_they_parse_too(fake: FakeRazorpay, client: RazorpayClient) -> None:
    documented = load_fixture("api_responses/api_fetch_invoices_for_subscription__success.json")
    fake.set_invoices("sub_00000000000001", documented["items"])
    invoices = client.subscription_invoices("sub_00000000000001")
    assert [(i.id, i.amount, i.status, i.paid_at) for i in invoices] == [
        ("inv_00000000000003", 99900, "paid", 1593344889),
        ("inv_00000000000001", 129900, "paid", 1591878210),
    ]


# ---------------------------------------------------------------- failures: one error type, nothing secret


def test_given_a_slow_razorpay_then_the_timeout_is_an_upstream_error(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    # GIVEN Razorpay holds its answer longer than our timeout
    fake.script(Delay(SHORT_TIMEOUT * 4))
    started = time.monotonic()
    # WHEN a subscription is created
    with pytest.raises(UpstreamError) as caught:
        client.create_subscription("plan_x", total_count=12, notes={})
    # THEN it gave up after about the timeout, once (the SDK's retry is off)
    assert time.monotonic() - started < SHORT_TIMEOUT * 3
    assert_generic(caught.value, "create_subscription", "timeout")
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "server_error"), (502, "gateway_error"), (503, "server_error")]
)
def test_given_a_5xx_then_an_upstream_error(
    fake: FakeRazorpay, client: RazorpayClient, status: int, reason: str
) -> None:
    fake.script(Status(status))
    with pytest.raises(UpstreamError) as caught:
        client.fetch_subscription(MOCK_SUBSCRIPTION["id"])
    assert not isinstance(caught.value, RazorpayRefusedError)
    assert_generic(caught.value, "fetch_subscription", reason)
    assert len(fake.requests) == 1


def test_given_a_5xx_with_an_html_body_then_an_upstream_error(fake: FakeRazorpay, client: RazorpayClient) -> None:
    fake.script(Status(504, "<html><body>Gateway Timeout</body></html>"))
    with pytest.raises(UpstreamError) as caught:
        client.subscription_invoices(MOCK_SUBSCRIPTION["id"])
    assert_generic(caught.value, "subscription_invoices", "unexpected_response")


def test_given_a_400_then_a_refusal_which_is_an_upstream_error(fake: FakeRazorpay, client: RazorpayClient) -> None:
    # GIVEN Razorpay refuses the plan change (its documented error body)
    fake.script(Status(400, load_fixture("api_responses/api_create_subscription__failure.json")), method="PATCH")
    with pytest.raises(RazorpayRefusedError) as caught:
        client.edit_subscription(MOCK_SUBSCRIPTION["id"], plan_id="plan_b", schedule_change_at="now")
    # THEN a refusal, still a 502 UPSTREAM_ERROR to anyone who does not handle it
    assert isinstance(caught.value, UpstreamError)
    assert_generic(caught.value, "edit_subscription", "refused")
    # AND the subscription is unchanged
    assert fake.subscription(MOCK_SUBSCRIPTION["id"])["plan_id"] == MOCK_SUBSCRIPTION["plan_id"]


def test_given_an_unknown_subscription_then_razorpay_refuses(client: RazorpayClient) -> None:
    with pytest.raises(RazorpayRefusedError) as caught:
        client.cancel_subscription("sub_doesnotexist00", at_cycle_end=False)
    assert_generic(caught.value, "cancel_subscription", "refused")


def test_given_a_wrong_key_then_an_upstream_error_that_shows_no_key(
    fake: FakeRazorpay, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = RazorpayClient(
        key_id=KEY_ID, key_secret="wrong-secret-also-never-shown", base_url=fake.base_url, timeout_seconds=1
    )
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError) as caught:
        wrong.fetch_subscription(MOCK_SUBSCRIPTION["id"])
    assert_generic(caught.value, "fetch_subscription", "refused")
    assert fake.requests[0].status == 401
    # AND the failure is logged, with Razorpay's description, without the secret or the body
    (record,) = [r for r in caplog.records if r.getMessage() == "razorpay call failed"]
    logged = repr(vars(record))
    assert getattr(record, "razorpay_description", None) == "Authentication failed"
    assert "wrong-secret-also-never-shown" not in logged and KEY_SECRET not in logged
    assert "wrong-secret" not in repr(wrong)


def test_given_nothing_listening_then_a_connection_error_is_an_upstream_error() -> None:
    client = RazorpayClient(key_id=KEY_ID, key_secret=KEY_SECRET, base_url="http://127.0.0.1:9", timeout_seconds=1)
    with pytest.raises(UpstreamError) as caught:
        client.fetch_subscription("sub_x")
    assert_generic(caught.value, "fetch_subscription", "connection")


def test_given_a_body_that_is_not_a_subscription_then_an_upstream_error(
    fake: FakeRazorpay, client: RazorpayClient
) -> None:
    fake.script(Status(200, {"entity": "collection", "items": "nope"}))
    with pytest.raises(UpstreamError) as caught:
        client.fetch_subscription(MOCK_SUBSCRIPTION["id"])
    assert_generic(caught.value, "fetch_subscription", "unexpected_response")


# ---------------------------------------------------------------- Checkout signature and configuration


def test_given_checkout_values_then_the_signature_is_verified_in_constant_time(client: RazorpayClient) -> None:
    good = hmac.new(KEY_SECRET.encode(), b"pay_123|sub_456", hashlib.sha256).hexdigest()
    assert checkout_signature(KEY_SECRET, "pay_123", "sub_456") == good
    assert client.verify_checkout_signature("pay_123", "sub_456", good)
    assert not client.verify_checkout_signature("pay_123", "sub_789", good)  # another subscription
    assert not client.verify_checkout_signature("pay_999", "sub_456", good)
    assert not client.verify_checkout_signature("pay_123", "sub_456", good.upper())
    assert not client.verify_checkout_signature("pay_123", "sub_456", "é" * 64)  # non-ASCII is just wrong


def test_given_no_keys_then_billing_is_not_configured() -> None:
    for changes in (
        {"razorpay_key_id": None},
        {"razorpay_key_secret": None},
        {"razorpay_key_secret": SecretStr("")},
    ):
        settings = Settings(razorpay_key_id=KEY_ID, razorpay_key_secret=SecretStr(KEY_SECRET)).model_copy(
            update=changes
        )
        with pytest.raises(UnavailableError) as caught:
            build_razorpay_client(settings)
        assert (caught.value.status, caught.value.message) == (503, "Billing is not configured")


def test_given_the_settings_then_one_client_per_container_with_their_timeout_and_base(fake: FakeRazorpay) -> None:
    changes: dict[str, Any] = {
        "razorpay_key_id": KEY_ID,
        "razorpay_key_secret": SecretStr(KEY_SECRET),
        "razorpay_api_base_url": fake.base_url + "/",
        "razorpay_timeout_seconds": SHORT_TIMEOUT,
    }
    with override_settings(**changes):
        first = get_razorpay_client()
        assert get_razorpay_client() is first  # kept for warm invocations
        assert first.fetch_subscription(MOCK_SUBSCRIPTION["id"]).id == MOCK_SUBSCRIPTION["id"]
        fake.script(Delay(SHORT_TIMEOUT * 4))
        with pytest.raises(UpstreamError) as caught:
            first.fetch_subscription(MOCK_SUBSCRIPTION["id"])
        assert caught.value.details["reason"] == "timeout"
    with override_settings(**changes):
        assert get_razorpay_client() is not first  # new settings, new client


def test_given_no_keys_then_the_billing_routes_answer_503_but_the_plans_are_served() -> None:
    headers = {"authorization": f"Bearer {token_for(uuid.uuid4())}"}

    async def requests() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as http:
            return [
                await http.get("/subscription/plans"),
                await http.post("/subscription/create", json={"tier": "pro"}),
                await http.post("/subscription/create", json={"tier": "pro"}, headers=headers),
            ]

    with override_settings(razorpay_key_id=None, razorpay_key_secret=None, razorpay_plan_ids="pro=plan_p"):
        plans, anonymous, unconfigured = anyio.run(requests)
    assert plans.status_code == 200
    assert [p["purchasable"] for p in plans.json()["items"]] == [False, True, False]
    # a token is checked first: 401 without one, then 503 because billing is not configured
    assert anonymous.status_code == 401
    assert unconfigured.status_code == 503
    assert unconfigured.json()["error"] == {
        "code": "UNAVAILABLE",
        "message": "Billing is not configured",
        "details": {"provider": "razorpay"},
    }
