"""The edges of the billing state machine, against the test database: subscriptions that overlap, tiers
given some other way, webhooks with odd parts, a misconfigured event bus, and the billing routes when
the configuration is broken, the stored marks are unreadable, the user disappears while Razorpay is
answering, or Razorpay answers for a subscription that is not the one asked about.

Webhooks are delivered to the deployed entry point (a Function URL event); the billing routes are the
billing app over ASGI, calling the fake Razorpay over a real socket."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from billing.app import build_app
from pydantic import SecretStr

from local.fake_razorpay import Delay, FakeRazorpay, Status, load_fixture
from oneai.billing.tier_change import change_tier
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.logging import logger
from tests.conftest import AppUser
from tests.integration.test_webhooks import (
    ENTERPRISE_PLAN,
    PLAN_IDS,
    SECRET,
    Answer,
    FakeLambdaContext,
    Scenario,
    body_of,
    fixture_json,
    history,
    new_user,
    processed,
    sign,
    subscription_row,
    table_counts,
    url_event,
    user_row,
)

pytestmark = pytest.mark.timeout(60)

KEY_ID = "rzp_test_EdgeCases000001"
KEY_SECRET = "edge-case-razorpay-secret-never-shown"
Deliver = Callable[..., Answer]


@pytest.fixture
def deliver(database_url: str) -> Iterator[Deliver]:
    from webhooks.handler import lambda_handler

    with override_settings(
        database_url=SecretStr(database_url),
        razorpay_webhook_secret=SecretStr(SECRET),
        razorpay_webhook_secret_previous=None,
        razorpay_plan_ids=PLAN_IDS,
        event_bus_name=None,
    ):

        def post(body: bytes, *, event_id: str | None = None) -> Answer:
            event = url_event(body, signature=sign(body), event_id=event_id or f"evt_{uuid.uuid4().hex[:14]}")
            result = lambda_handler(event, FakeLambdaContext())
            return Answer(result["statusCode"], json.loads(result["body"]))

        yield post


def new_scenario(database_url: str, user_id: uuid.UUID | None = None) -> Scenario:
    return Scenario(user_id or new_user(database_url), f"sub_E{uuid.uuid4().hex[:13]}", int(time.time()) - 3600)


# ---------------------------------------------------------------- overlapping subscriptions


def test_a_pro_subscription_beside_an_enterprise_one_changes_nothing_for_the_user(
    deliver: Deliver, database_url: str
) -> None:
    enterprise = new_scenario(database_url)
    pro = new_scenario(database_url, enterprise.user_id)
    assert (
        deliver(enterprise.body("subscription.charged", at=enterprise.base, plan_id=ENTERPRISE_PLAN)).status == 200
    )
    assert user_row(database_url, enterprise.user_id) == {
        "subscription_tier": "enterprise",
        "subscription_status": "active",
    }

    # WHEN a second, lower subscription is activated and charged
    assert deliver(pro.body("subscription.activated", at=pro.base + 5)).status == 200
    assert deliver(pro.body("subscription.charged", at=pro.base + 6)).status == 200

    # THEN the user keeps enterprise, and their history shows no change
    assert user_row(database_url, enterprise.user_id) == {
        "subscription_tier": "enterprise",
        "subscription_status": "active",
    }
    assert [(h["old_tier"], h["new_tier"]) for h in history(database_url, enterprise.user_id)] == [
        ("free", "enterprise")
    ]
    second = subscription_row(database_url, pro.subscription_id)
    assert second is not None and second["status"] == "active"


def test_a_subscription_that_ends_leaves_alone_a_tier_given_since_by_someone_else(
    deliver: Deliver, database_url: str, db: Database
) -> None:
    s = new_scenario(database_url)
    assert deliver(s.body("subscription.charged", at=s.base)).status == 200
    assert user_row(database_url, s.user_id)["subscription_tier"] == "pro"
    with db.service_transaction() as conn:  # e.g. an operator moves the user up by hand
        change_tier(conn, user_id=s.user_id, new_tier="enterprise", reason="system")

    # WHEN the pro subscription is cancelled
    assert deliver(s.body("subscription.cancelled", at=s.base + 10)).status == 200

    # THEN the operator's enterprise stays; only the subscription ended
    assert user_row(database_url, s.user_id)["subscription_tier"] == "enterprise"
    assert [h["change_reason"] for h in history(database_url, s.user_id)] == ["new_subscription", "system"]
    ended = subscription_row(database_url, s.subscription_id)
    assert ended is not None and ended["status"] == "cancelled"


# ---------------------------------------------------------------- odd deliveries


def test_an_event_id_over_200_characters_is_400_and_writes_nothing(deliver: Deliver, database_url: str) -> None:
    s = new_scenario(database_url)
    before = table_counts(database_url)
    answer = deliver(s.body("subscription.charged", at=s.base), event_id="evt_" + "x" * 197)
    assert (answer.status, answer.body["error"]["code"]) == (400, "BAD_REQUEST")
    assert table_counts(database_url) == before


def test_an_unreadable_entity_is_recorded_and_logged_by_name_only(
    deliver: Deliver, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = copy.deepcopy(fixture_json("payment.failed__card.json"))
    secret_text = "card ending 4242 of Ana"
    document["payload"]["payment"]["entity"]["id"] = {"unexpected": secret_text}
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    with caplog.at_level(logging.WARNING, logger=logger.name):
        answer = deliver(body_of(document), event_id=event_id)
    # Razorpay gets its 200 (a retry would not make the body readable), the delivery is recorded
    assert answer.status == 200
    recorded = processed(database_url, event_id)
    assert recorded is not None and recorded["event_type"] == "payment.failed"
    warnings = [r for r in caplog.records if r.getMessage() == "unreadable entities in a webhook"]
    assert len(warnings) == 1
    assert secret_text not in caplog.text


def test_notes_naming_no_user_of_ours_adopt_nothing(deliver: Deliver, database_url: str) -> None:
    s = new_scenario(database_url)
    before = table_counts(database_url)
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    body = s.body("subscription.charged", at=s.base, notes={"user_id": "not-a-uuid", "tier": "pro"})
    assert deliver(body, event_id=event_id).status == 200
    assert subscription_row(database_url, s.subscription_id) is None
    assert user_row(database_url, s.user_id)["subscription_tier"] == "free"
    after = table_counts(database_url)
    assert after["processed_webhook_events"] == before["processed_webhook_events"] + 1
    assert after["subscriptions"] == before["subscriptions"]


def test_a_misconfigured_event_bus_never_fails_a_payment_failed_webhook(
    deliver: Deliver, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = new_user(database_url)
    document = copy.deepcopy(fixture_json("payment.failed__upi.json"))
    document["payload"]["payment"]["entity"]["notes"] = {"user_id": str(user_id)}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "::not a url::")  # the client cannot even be built
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    with override_settings(event_bus_name="oneai-test-misconfigured-bus"), caplog.at_level(logging.WARNING):
        answer = deliver(body_of(document), event_id=event_id)
    assert answer.status == 200
    assert processed(database_url, event_id) is not None
    assert any(r.getMessage() == "PaymentFailed not published" for r in caplog.records)


# ---------------------------------------------------------------- the billing routes at their edges


@pytest.fixture(scope="module")
def razorpay_fake() -> Iterator[FakeRazorpay]:
    with FakeRazorpay(key_id=KEY_ID, key_secret=KEY_SECRET) as fake:
        yield fake


@pytest.fixture
def fake(razorpay_fake: FakeRazorpay) -> Iterator[FakeRazorpay]:
    razorpay_fake.reset()
    yield razorpay_fake
    razorpay_fake.reset()


BillingCall = Callable[..., httpx.Response]


@pytest.fixture
def billing(database_url: str, fake: FakeRazorpay) -> Iterator[BillingCall]:
    """The billing app in this process, configured as in AWS but against the fake Razorpay."""
    settings = {
        "database_url": SecretStr(database_url),
        "razorpay_key_id": KEY_ID,
        "razorpay_key_secret": SecretStr(KEY_SECRET),
        "razorpay_plan_ids": PLAN_IDS,
        "razorpay_api_base_url": fake.base_url,
        "razorpay_timeout_seconds": 3.0,
    }
    with override_settings(**settings):
        app = build_app()

        def call(method: str, path: str, user: AppUser | None = None, **kwargs: Any) -> httpx.Response:
            async def send() -> httpx.Response:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as http:
                    return await http.request(method, path, headers=user.headers if user else {}, **kwargs)

            return anyio.run(send)

        yield call


def test_malformed_plan_ids_make_billing_unavailable_without_calling_razorpay(
    billing: BillingCall, fake: FakeRazorpay, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    with override_settings(razorpay_plan_ids="pro"):  # no "=plan_...": a configuration error
        plans = billing("GET", "/subscription/plans")
        created = billing("POST", "/subscription/create", user, json={"tier": "pro"})
    for answer in (plans, created):
        assert answer.status_code == 503
        assert answer.json()["error"] == {
            "code": "UNAVAILABLE",
            "message": "Billing is not configured",
            "details": {"provider": "razorpay"},
        }
    assert fake.requests == []


def test_unreadable_marks_on_a_stored_subscription_show_as_absent(
    billing: BillingCall, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    created = billing("POST", "/subscription/create", user, json={"tier": "pro"})
    assert created.status_code == 200, created.text
    # marks written by an older version, or by hand, that no longer read as a time or a change
    marks = {"checkout_verified_at": "yesterday", "scheduled_change": {"plan_id": ["plan_x"], "at": "soon"}}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.subscriptions set metadata = metadata || %s::jsonb where provider_subscription_id = %s",
            (json.dumps(marks), created.json()["subscription_id"]),
        )
    current = billing("GET", "/subscription", user)
    assert current.status_code == 200, current.text
    subscription = current.json()["subscription"]
    assert subscription["razorpay_subscription_id"] == created.json()["subscription_id"]
    assert subscription["checkout_verified_at"] is None
    assert subscription["scheduled_change"] is None


def delete_user_during_the_create(fake: FakeRazorpay, database_url: str, user_id: uuid.UUID) -> threading.Thread:
    """Delete the account once Razorpay has received the create (and is holding its answer)."""

    def delete() -> None:
        deadline = time.monotonic() + 10
        while not fake.requests_to("POST", "/v1/subscriptions") and time.monotonic() < deadline:
            time.sleep(0.01)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("delete from auth.users where id = %s", (user_id,))

    thread = threading.Thread(target=delete, daemon=True)
    thread.start()
    return thread


def test_a_user_deleted_while_razorpay_creates_their_subscription_leaves_no_paid_orphan(
    billing: BillingCall, fake: FakeRazorpay, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    fake.script(Delay(1.0), method="POST")  # Razorpay takes a second to create it ...
    deleting = delete_user_during_the_create(fake, database_url, user.id)  # ... and the account goes meanwhile
    answer = billing("POST", "/subscription/create", user, json={"tier": "pro"})
    deleting.join(5)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "UNAUTHORIZED"
    # the subscription Razorpay made is cancelled at once, so nobody is ever charged for it
    (create,) = fake.requests_to("POST", "/v1/subscriptions")[:1]
    cancels = [r for r in fake.requests_to("POST", "/cancel")]
    assert len(cancels) == 1
    orphan_id = cancels[0].path.split("/")[3]
    assert create.body["notes"]["user_id"] == str(user.id)
    assert fake.subscription(orphan_id)["status"] == "cancelled"
    assert subscription_row(database_url, orphan_id) is None


def test_an_orphan_razorpay_will_not_cancel_is_logged_for_the_dashboard(
    billing: BillingCall,
    fake: FakeRazorpay,
    make_user: Callable[..., AppUser],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    fake.script(Delay(1.0), Status(500), method="POST")  # slow create, then the cancel fails
    deleting = delete_user_during_the_create(fake, database_url, user.id)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        answer = billing("POST", "/subscription/create", user, json={"tier": "pro"})
    deleting.join(5)

    assert answer.status_code == 401
    cancels = fake.requests_to("POST", "/cancel")
    assert len(cancels) == 1
    orphan_id = cancels[0].path.split("/")[3]
    assert fake.subscription(orphan_id)["status"] == "created"  # Razorpay did not cancel it
    errors = [r for r in caplog.records if "cancel it in the dashboard" in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    assert KEY_SECRET not in caplog.text


def test_invoices_razorpay_returns_for_another_subscription_are_never_shown(
    billing: BillingCall, fake: FakeRazorpay, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    created = billing("POST", "/subscription/create", user, json={"tier": "pro"})
    assert created.status_code == 200, created.text
    ours = created.json()["subscription_id"]
    with psycopg.connect(database_url, autocommit=True) as conn:  # paid, as the webhooks record it
        conn.execute(
            "update public.subscriptions set status = 'active' where provider_subscription_id = %s", (ours,)
        )
    sample = load_fixture("sdk_mocks/invoice_collection.json")["items"][0]
    fake.set_invoices(
        ours,
        [
            {**sample, "id": "inv_OursAAAAAAAAA1", "subscription_id": ours},
            {**sample, "id": "inv_SomeoneElse01", "subscription_id": "sub_SomeoneElse001"},
            {**sample, "id": "inv_NoSubscript01", "subscription_id": None},
        ],
    )
    invoices = billing("GET", "/subscription/invoices", user)
    assert invoices.status_code == 200, invoices.text
    assert [item["id"] for item in invoices.json()["items"]] == ["inv_OursAAAAAAAAA1", "inv_NoSubscript01"]
