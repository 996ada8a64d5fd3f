"""The billing API over HTTP through the local server (template routes -> API Gateway events -> the Lambda
handler), with every Razorpay call going over HTTP to the fake Razorpay (the SDK's mock bodies).

Webhooks are not part of this: where a test needs a subscription that Razorpay has activated, it sets the
state a webhook would have left, in our database and in the fake."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.fake_razorpay import Delay, FakeRazorpay, Status, load_fixture
from oneai.billing import service
from oneai.billing.models import CreateSubscriptionRequest
from oneai.billing.razorpay_client import RazorpayClient
from oneai.billing.tier_change import change_tier
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.errors import ConflictError
from oneai.quota.tiers import TierName
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_PLAN_IDS, E2E_RAZORPAY_KEY_ID, E2E_RAZORPAY_KEY_SECRET, LocalServer

pytestmark = pytest.mark.e2e

PLANS = dict(entry.split("=") for entry in E2E_PLAN_IDS.split(","))
PRO_PLAN, ENTERPRISE_PLAN = PLANS["pro"], PLANS["enterprise"]
REFUSAL = load_fixture("api_responses/api_create_subscription__failure.json")
MOCK_INVOICES = load_fixture("sdk_mocks/invoice_collection.json")["items"]
SUBSCRIPTION_FIELDS = {
    "id", "razorpay_subscription_id", "tier", "plan_id", "status", "current_period_start", "current_period_end",
    "paid_until", "grace_until", "cancel_at_period_end", "canceled_at", "checkout_verified_at",
    "scheduled_change", "created_at", "updated_at",
}  # fmt: skip


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


@pytest.fixture
def bob(database_url: str) -> AppUser:
    return create_user(database_url)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert E2E_RAZORPAY_KEY_SECRET not in response.text
    return dict(body["error"])


def sign(payment_id: str, subscription_id: str, secret: str = E2E_RAZORPAY_KEY_SECRET) -> str:
    """What Razorpay Checkout hands back: HMAC-SHA256 of `payment_id|subscription_id` with the key secret."""
    return hmac.new(secret.encode(), f"{payment_id}|{subscription_id}".encode(), hashlib.sha256).hexdigest()


def subscriptions_of(database_url: str, user: AppUser) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "select * from public.subscriptions where user_id = %s order by created_at, id", (user.id,)
        ).fetchall()


def tier_of(database_url: str, user: AppUser) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select subscription_tier from public.users where id = %s", (user.id,)).fetchone()
    assert row is not None
    return str(row[0])


def activate(database_url: str, razorpay: FakeRazorpay, razorpay_subscription_id: str) -> datetime:
    """What Checkout and the `subscription.activated` webhook leave behind: active at Razorpay and here,
    with a paid cycle that ends in 20 days. Returns the cycle's end."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    end = start + timedelta(days=30)
    razorpay.update_subscription(
        razorpay_subscription_id,
        status="active",
        current_start=int(start.timestamp()),
        current_end=int(end.timestamp()),
        paid_count=1,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.subscriptions set status = 'active', current_period_start = %s, current_period_end = %s,"
            " paid_until = %s where provider_subscription_id = %s",
            (start, end, end, razorpay_subscription_id),
        )
    return end


def creates(razorpay: FakeRazorpay) -> list[Any]:
    """The subscription creates Razorpay received (not the cancels under the same path)."""
    return [r for r in razorpay.requests if (r.method, r.path) == ("POST", "/v1/subscriptions")]


def made_for(razorpay: FakeRazorpay, user: AppUser) -> set[str]:
    """The subscriptions the fake Razorpay holds whose notes name `user`."""
    with razorpay.state.lock:
        subscriptions = list(razorpay.state.subscriptions.values())
    return {
        sub["id"]
        for sub in subscriptions
        if isinstance(sub["notes"], dict) and sub["notes"].get("user_id") == str(user.id)
    }


def create(client: httpx.Client, user: AppUser, tier: str = "pro") -> dict[str, Any]:
    response = client.post("/subscription/create", json={"tier": tier}, headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---------------------------------------------------------------- plans


def test_plans_are_public_and_come_from_configuration(client: httpx.Client) -> None:
    # WHEN a pricing page asks without a token
    response = client.get("/subscription/plans")
    # THEN every tier, with price, currency, quotas and features; the paid tiers with a plan are on sale
    assert response.status_code == 200, response.text
    items = {plan["tier"]: plan for plan in response.json()["items"]}
    assert list(items) == ["free", "pro", "enterprise"]
    assert {tier: plan["purchasable"] for tier, plan in items.items()} == {
        "free": False,
        "pro": True,
        "enterprise": True,
    }
    pro = items["pro"]
    assert (pro["price"], pro["currency"], pro["interval"]) == (999, "USD", "monthly")
    assert pro["quotas"]["large_messages"] == {"limit": 100, "reset_frequency": "monthly"}
    assert pro["features"] and items["enterprise"]["price"] is None
    assert "plan_" not in response.text  # Razorpay's plan ids stay on the server


# ---------------------------------------------------------------- create


def test_create_calls_razorpay_first_then_stores_the_subscription_as_created(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # WHEN alice asks for pro
    checkout = create(client, alice)

    # THEN she gets what Razorpay Checkout needs
    assert set(checkout) == {"subscription_id", "razorpay_key_id", "short_url"}
    assert checkout["subscription_id"].startswith("sub_")
    assert checkout["razorpay_key_id"] == E2E_RAZORPAY_KEY_ID
    assert checkout["short_url"].startswith("https://rzp.io/")
    # AND Razorpay was asked for the pro plan, with notes naming her and the tier
    (request,) = creates(razorpay)
    assert request.body["plan_id"] == PRO_PLAN
    assert request.body["notes"] == {"user_id": str(alice.id), "tier": "pro"}
    assert request.body["total_count"] >= 12
    # AND the subscription is stored `created`, with the notes; her tier is still free (webhooks grant it)
    (row,) = subscriptions_of(database_url, alice)
    assert (row["status"], row["tier"], row["plan_id"]) == ("created", "pro", PRO_PLAN)
    assert row["provider_subscription_id"] == checkout["subscription_id"]
    assert row["payment_provider"] == "razorpay"
    assert row["metadata"]["notes"] == {"user_id": str(alice.id), "tier": "pro"}
    assert tier_of(database_url, alice) == "free"


def test_a_second_create_is_a_conflict_and_asks_razorpay_nothing(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    first = create(client, alice)
    response = client.post("/subscription/create", json={"tier": "enterprise"}, headers=alice.headers)
    error = error_of(response, 409, "CONFLICT")
    assert error["details"] == {"subscription_id": first["subscription_id"], "status": "created", "tier": "pro"}
    assert len(creates(razorpay)) == 1
    assert len(subscriptions_of(database_url, alice)) == 1


def test_racing_creates_leave_one_subscription_and_cancel_the_others_at_razorpay(
    razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    """The service itself, from four threads (one Lambda container serves one request at a time, so the
    race needs several containers: here, threads with their own connections). Razorpay holds every create
    long enough for all four to pass the first check."""
    client = RazorpayClient(
        key_id=E2E_RAZORPAY_KEY_ID,
        key_secret=E2E_RAZORPAY_KEY_SECRET,
        base_url=razorpay.base_url,
        timeout_seconds=5,
    )
    razorpay.script(*[Delay(0.3)] * 4, method="POST")
    barrier = threading.Barrier(4)
    settings = {"database_url": SecretStr(database_url), "razorpay_plan_ids": E2E_PLAN_IDS}
    with override_settings(**settings) as configured:
        db = Database(configured)

        def ask(tier: TierName) -> str:
            barrier.wait()
            try:
                request = CreateSubscriptionRequest(tier=tier)
                return service.create_subscription(db, alice.principal, request, client).subscription_id
            except ConflictError:
                return "conflict"

        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                outcomes = list(pool.map(ask, ["pro", "enterprise", "pro", "enterprise"]))
        finally:
            db.close()
    # THEN Razorpay made four subscriptions, exactly one was stored, the other three were refused
    assert len(creates(razorpay)) == 4
    winners = [outcome for outcome in outcomes if outcome != "conflict"]
    assert len(winners) == 1, outcomes
    (row,) = subscriptions_of(database_url, alice)
    assert row["provider_subscription_id"] == winners[0]
    # AND the three that were not stored were cancelled at Razorpay again
    made = made_for(razorpay, alice)
    assert len(made) == 4
    for subscription_id in made - {winners[0]}:
        assert razorpay.subscription(subscription_id)["status"] == "cancelled", subscription_id
    assert razorpay.subscription(winners[0])["status"] == "created"


@pytest.mark.parametrize(
    ("body", "status"),
    [({"tier": "free"}, 422), ({"tier": "platinum"}, 422), ({}, 422), ({"tier": "pro", "price": 1}, 422)],
)
def test_create_refuses_what_is_not_on_sale(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, body: dict[str, Any], status: int
) -> None:
    response = client.post("/subscription/create", json=body, headers=alice.headers)
    error_of(response, status, "VALIDATION_ERROR")
    assert razorpay.requests == []


@pytest.mark.parametrize(
    "failure",
    [(Status(500), "server_error"), (Status(502), "gateway_error"), (Delay(2.5), "timeout")],
    ids=["500", "502", "timeout"],
)
def test_a_razorpay_failure_on_create_is_502_and_writes_nothing(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str, failure: tuple[Any, str]
) -> None:
    fault, reason = failure
    # GIVEN Razorpay fails (or answers later than RAZORPAY_TIMEOUT_SECONDS)
    razorpay.script(fault)
    started = time.monotonic()
    # WHEN alice creates a subscription
    response = client.post("/subscription/create", json={"tier": "pro"}, headers=alice.headers)
    # THEN a generic upstream error, quickly, and no row
    error = error_of(response, 502, "UPSTREAM_ERROR")
    assert error["message"] == "The payment provider failed"
    assert error["details"] == {"provider": "razorpay", "operation": "create_subscription", "reason": reason}
    assert time.monotonic() - started < 2.5
    assert subscriptions_of(database_url, alice) == []
    # AND she can try again once Razorpay answers
    assert create(client, alice)["subscription_id"].startswith("sub_")


# ---------------------------------------------------------------- verify


def test_verify_accepts_checkouts_signature_of_our_stored_subscription_but_grants_nothing(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice went through Checkout for her subscription
    subscription_id = create(client, alice)["subscription_id"]
    body = {
        "razorpay_payment_id": "pay_29QQoUBi66xm2f",
        "razorpay_subscription_id": subscription_id,
        "razorpay_signature": sign("pay_29QQoUBi66xm2f", subscription_id),
    }
    # WHEN the frontend sends what Checkout handed back
    response = client.post("/subscription/verify", json=body, headers=alice.headers)
    # THEN verified, provisionally: the subscription is still `created` and her tier still free
    assert response.status_code == 200, response.text
    assert response.json() == {"verified": True, "subscription_id": subscription_id, "status": "created"}
    (row,) = subscriptions_of(database_url, alice)
    assert row["status"] == "created" and row["metadata"]["checkout_payment_id"] == "pay_29QQoUBi66xm2f"
    verified_at = datetime.fromisoformat(row["metadata"]["checkout_verified_at"])
    assert abs((datetime.now(UTC) - verified_at).total_seconds()) < 60
    assert tier_of(database_url, alice) == "free"
    current = client.get("/subscription", headers=alice.headers).json()["subscription"]
    assert current["checkout_verified_at"] is not None
    # AND no Razorpay call was needed
    assert len(razorpay.requests) == 1


def test_verify_still_succeeds_when_the_webhooks_activated_the_subscription_first(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    subscription_id = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, subscription_id)  # subscription.activated arrived before the browser
    body = {
        "razorpay_payment_id": "pay_early",
        "razorpay_subscription_id": subscription_id,
        "razorpay_signature": sign("pay_early", subscription_id),
    }
    response = client.post("/subscription/verify", json=body, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"


def test_verify_refuses_a_wrong_signature_and_someone_elses_subscription(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, bob: AppUser, database_url: str
) -> None:
    alices = create(client, alice)["subscription_id"]
    bobs = create(client, bob)["subscription_id"]
    attempts = [
        # a signature made with another secret
        (alices, sign("pay_1", alices, secret="not-our-secret")),
        # the right signature for another payment id
        (alices, sign("pay_2", alices)),
        # bob's subscription id sent back with a genuine signature for it: not alice's subscription
        (bobs, sign("pay_1", bobs)),
        # a genuine signature of alice's subscription, but bob's id sent back
        (bobs, sign("pay_1", alices)),
    ]
    for sent_id, signature in attempts:
        body = {
            "razorpay_payment_id": "pay_1",
            "razorpay_subscription_id": sent_id,
            "razorpay_signature": signature,
        }
        response = client.post("/subscription/verify", json=body, headers=alice.headers)
        assert error_of(response, 400, "BAD_REQUEST")["message"] == "The checkout could not be verified"
    # AND nothing was marked on either subscription
    for user in (alice, bob):
        (row,) = subscriptions_of(database_url, user)
        assert "checkout_verified_at" not in row["metadata"]


def test_verify_without_a_subscription_awaiting_checkout_is_400(client: httpx.Client, alice: AppUser) -> None:
    body = {"razorpay_payment_id": "pay_1", "razorpay_subscription_id": "sub_1", "razorpay_signature": "0" * 64}
    error_of(client.post("/subscription/verify", json=body, headers=alice.headers), 400, "BAD_REQUEST")
    error_of(
        client.post("/subscription/verify", json={"razorpay_payment_id": "pay_1"}, headers=alice.headers),
        422,
        "VALIDATION_ERROR",
    )


# ---------------------------------------------------------------- cancel


def test_cancel_at_cycle_end_keeps_the_subscription_until_razorpay_ends_it(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice's active pro subscription
    subscription_id = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, subscription_id)
    # WHEN she cancels at the end of the cycle (the default)
    response = client.post("/subscription/cancel", json={"at_cycle_end": True}, headers=alice.headers)
    # THEN Razorpay was asked for exactly that, and its answer (still active) is recorded
    assert response.status_code == 200, response.text
    subscription = response.json()["subscription"]
    assert set(subscription) == SUBSCRIPTION_FIELDS
    assert (subscription["status"], subscription["cancel_at_period_end"]) == ("active", True)
    assert subscription["canceled_at"] is None
    (request,) = razorpay.requests_to("POST", "/cancel")
    assert request.path == f"/v1/subscriptions/{subscription_id}/cancel"
    assert request.body == {"cancel_at_cycle_end": 1}
    (row,) = subscriptions_of(database_url, alice)
    assert row["status"] == "active" and row["cancel_at_period_end"]
    # AND asking again changes nothing and calls Razorpay no more
    again = client.post("/subscription/cancel", headers=alice.headers)
    assert again.status_code == 200 and again.json()["subscription"]["cancel_at_period_end"]
    assert len(razorpay.requests_to("POST", "/cancel")) == 1


def test_cancel_now_and_cancel_of_an_unpaid_subscription_end_it_at_once(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, bob: AppUser, database_url: str
) -> None:
    # alice: active, cancelled now
    alices = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, alices)
    now = client.post("/subscription/cancel", json={"at_cycle_end": False}, headers=alice.headers)
    assert now.status_code == 200, now.text
    assert (now.json()["subscription"]["status"], now.json()["subscription"]["cancel_at_period_end"]) == (
        "cancelled",
        False,
    )
    assert now.json()["subscription"]["canceled_at"] is not None
    # bob: never went through Checkout; with no cycle to finish it is cancelled now whatever he asks
    bobs = create(client, bob)["subscription_id"]
    unpaid = client.post("/subscription/cancel", headers=bob.headers)
    assert unpaid.status_code == 200 and unpaid.json()["subscription"]["status"] == "cancelled"
    bodies = {r.path: r.body for r in razorpay.requests_to("POST", "/cancel")}
    assert bodies == {
        f"/v1/subscriptions/{alices}/cancel": {"cancel_at_cycle_end": 0},
        f"/v1/subscriptions/{bobs}/cancel": {"cancel_at_cycle_end": 0},
    }
    # AND the tiers are left to the webhooks; after the cancel bob may subscribe again
    assert tier_of(database_url, alice) == tier_of(database_url, bob) == "free"
    create(client, bob, "enterprise")


def test_cancel_without_a_live_subscription_is_404_and_a_razorpay_failure_changes_nothing(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    error_of(client.post("/subscription/cancel", headers=alice.headers), 404, "NOT_FOUND")
    subscription_id = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, subscription_id)
    razorpay.script(Status(503))
    error_of(client.post("/subscription/cancel", headers=alice.headers), 502, "UPSTREAM_ERROR")
    (row,) = subscriptions_of(database_url, alice)
    assert (row["status"], row["cancel_at_period_end"]) == ("active", False)


# ---------------------------------------------------------------- update (tier change)


def test_update_edits_the_plan_at_razorpay_when_it_allows(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice's active pro subscription (paid by card: Razorpay allows plan changes)
    subscription_id = create(client, alice)["subscription_id"]
    period_end = activate(database_url, razorpay, subscription_id)

    # WHEN she upgrades to enterprise
    response = client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers)
    # THEN the plan is changed now, on the same subscription, with nothing to pay through Checkout
    assert response.status_code == 200, response.text
    assert response.json() == {
        "change": "edited",
        "tier": "enterprise",
        "schedule_change_at": "now",
        "checkout_required": False,
        "subscription_id": subscription_id,
        "razorpay_key_id": E2E_RAZORPAY_KEY_ID,
        "short_url": razorpay.subscription(subscription_id)["short_url"],
    }
    (edit,) = razorpay.requests_to("PATCH", "/v1/subscriptions/")
    assert edit.body == {"plan_id": ENTERPRISE_PLAN, "schedule_change_at": "now"}
    (row,) = subscriptions_of(database_url, alice)
    assert (row["plan_id"], row["tier"], row["status"]) == (ENTERPRISE_PLAN, "enterprise", "active")
    assert tier_of(database_url, alice) == "free"  # granted by the webhooks, not here

    # WHEN she downgrades back to pro
    response = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers)
    # THEN the change waits for the end of the paid cycle
    assert response.status_code == 200, response.text
    assert (response.json()["change"], response.json()["schedule_change_at"]) == ("edited", "cycle_end")
    current = client.get("/subscription", headers=alice.headers).json()["subscription"]
    assert current["tier"] == "enterprise"
    assert current["scheduled_change"] == {
        "tier": "pro",
        "plan_id": PRO_PLAN,
        "at": period_end.isoformat().replace("+00:00", "Z"),
    }


def test_update_replaces_the_subscription_when_razorpay_refuses_an_upgrade(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice's active pro subscription, paid by UPI: Razorpay refuses plan changes
    old = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, old)
    razorpay.script(Status(400, REFUSAL), method="PATCH")

    # WHEN she upgrades to enterprise
    response = client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers)

    # THEN a new enterprise subscription for Checkout, answered like create
    assert response.status_code == 200, response.text
    result = response.json()
    new = result["subscription_id"]
    assert new != old and new.startswith("sub_")
    assert (result["change"], result["schedule_change_at"], result["checkout_required"]) == (
        "recreated",
        "now",
        True,
    )
    assert result["razorpay_key_id"] == E2E_RAZORPAY_KEY_ID and result["short_url"].startswith("https://rzp.io/")
    # AND Razorpay saw: the refused edit, then the new subscription; the paid one is NOT cancelled
    calls = [(r.method, r.path) for r in razorpay.requests]
    assert calls == [
        ("POST", "/v1/subscriptions"),
        ("PATCH", f"/v1/subscriptions/{old}"),
        ("POST", "/v1/subscriptions"),
    ]
    create_request = razorpay.requests[2]
    assert create_request.body["plan_id"] == ENTERPRISE_PLAN and "start_at" not in create_request.body
    assert create_request.body["notes"] == {"user_id": str(alice.id), "tier": "enterprise", "replaces": old}
    assert razorpay.subscription(old)["status"] == "active"
    # AND both are recorded, the new one linked to the one it replaces
    old_row, new_row = subscriptions_of(database_url, alice)
    assert (old_row["provider_subscription_id"], old_row["status"], old_row["cancel_at_period_end"]) == (
        old,
        "active",
        False,
    )
    assert (new_row["provider_subscription_id"], new_row["status"], new_row["tier"]) == (
        new,
        "created",
        "enterprise",
    )
    assert new_row["replaces_subscription_id"] == old_row["id"]
    # AND the paid one stays the subscription in force; the new one is shown as the replacement
    current = client.get("/subscription", headers=alice.headers).json()
    assert current["subscription"]["razorpay_subscription_id"] == old
    assert current["replacement"]["razorpay_subscription_id"] == new
    # AND Checkout's signature is verified against the new one
    body = {
        "razorpay_payment_id": "pay_9",
        "razorpay_subscription_id": new,
        "razorpay_signature": sign("pay_9", new),
    }
    assert client.post("/subscription/verify", json=body, headers=alice.headers).status_code == 200


def test_update_replaces_a_refused_downgrade_at_the_end_of_the_paid_cycle(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice's active enterprise subscription, paid by eMandate
    old = create(client, alice, "enterprise")["subscription_id"]
    period_end = activate(database_url, razorpay, old)
    razorpay.script(Status(400, REFUSAL), method="PATCH")
    # WHEN she downgrades to pro
    response = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers)
    # THEN the new pro subscription starts charging when the paid cycle ends, and the old one ends then
    assert response.status_code == 200, response.text
    assert (response.json()["change"], response.json()["schedule_change_at"]) == ("recreated", "cycle_end")
    create_request = creates(razorpay)[-1]
    assert create_request.body["plan_id"] == PRO_PLAN
    assert create_request.body["start_at"] == int(period_end.timestamp())
    # AND nothing is cancelled until Razorpay has the new one authenticated (its webhook)
    assert razorpay.requests_to("POST", "/cancel") == []
    old_row, new_row = subscriptions_of(database_url, alice)
    assert (old_row["status"], old_row["cancel_at_period_end"]) == ("active", False)
    assert (new_row["status"], new_row["tier"]) == ("created", "pro")


def test_update_of_an_unpaid_subscription_replaces_it_without_an_edit(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    old = create(client, alice)["subscription_id"]  # never went through Checkout: Razorpay cannot edit it
    response = client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["change"] == "recreated"
    assert razorpay.requests_to("PATCH") == []
    # the old one is cancelled only when Razorpay activates the new one
    assert razorpay.requests_to("POST", "/cancel") == []
    statuses = [(r["provider_subscription_id"], r["status"]) for r in subscriptions_of(database_url, alice)]
    assert statuses == [(old, "created"), (response.json()["subscription_id"], "created")]


def test_update_refusals(client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str) -> None:
    # without a subscription: nothing to change
    error_of(client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers), 404, "NOT_FOUND")
    subscription_id = create(client, alice)["subscription_id"]
    activate(database_url, razorpay, subscription_id)
    # the tier it already has
    same = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers)
    assert error_of(same, 409, "CONFLICT")["details"] == {"tier": "pro"}
    # free is not a plan (cancel instead)
    error_of(
        client.post("/subscription/update", json={"tier": "free"}, headers=alice.headers), 422, "VALIDATION_ERROR"
    )
    # Razorpay down during the edit: nothing changes
    razorpay.script(Status(500), method="PATCH")
    error_of(
        client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers),
        502,
        "UPSTREAM_ERROR",
    )
    # the refused edit's replacement cannot be created (Razorpay times out): nothing is cancelled or recorded
    razorpay.script(Status(400, REFUSAL), method="PATCH")
    razorpay.script(Delay(2.5), method="POST")
    error_of(
        client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers),
        502,
        "UPSTREAM_ERROR",
    )
    (row,) = subscriptions_of(database_url, alice)
    assert (row["tier"], row["status"], row["cancel_at_period_end"]) == ("pro", "active", False)
    assert razorpay.subscription(subscription_id)["plan_id"] == PRO_PLAN


def test_a_replacement_awaiting_checkout_is_answered_again_never_doubled_and_dropped_for_the_tier_in_force(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, database_url: str
) -> None:
    # GIVEN alice's active enterprise subscription and a downgrade to pro awaiting Checkout
    old = create(client, alice, "enterprise")["subscription_id"]
    activate(database_url, razorpay, old)
    razorpay.script(Status(400, REFUSAL), Status(400, REFUSAL), method="PATCH")
    first = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers).json()
    creates_before = len(creates(razorpay))
    # WHEN she asks for pro again (a double click, a reload): the same Checkout, nothing new at Razorpay
    again = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers)
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert len(creates(razorpay)) == creates_before
    # WHEN she asks for her own tier: she keeps it, and the pending change is cancelled at Razorpay and here
    kept = client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers)
    assert kept.status_code == 200, kept.text
    assert (kept.json()["change"], kept.json()["checkout_required"], kept.json()["subscription_id"]) == (
        "reverted",
        False,
        old,
    )
    assert razorpay.subscription(first["subscription_id"])["status"] == "cancelled"
    (cancel,) = razorpay.requests_to("POST", "/cancel")
    assert cancel.path == f"/v1/subscriptions/{first['subscription_id']}/cancel"
    # AND the paid subscription was never touched at Razorpay
    assert razorpay.subscription(old)["status"] == "active"
    statuses = [(r["provider_subscription_id"], r["status"]) for r in subscriptions_of(database_url, alice)]
    assert statuses == [(old, "active"), (first["subscription_id"], "cancelled")]
    assert client.get("/subscription", headers=alice.headers).json()["replacement"] is None


# ---------------------------------------------------------------- invoices and the current subscription


def test_invoices_come_from_razorpay_for_the_callers_subscriptions(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, bob: AppUser, database_url: str
) -> None:
    # GIVEN alice's subscription that was never paid: no invoices, no call
    subscription_id = create(client, alice)["subscription_id"]
    empty = client.get("/subscription/invoices", headers=alice.headers)
    assert empty.status_code == 200 and empty.json() == {"items": [], "next_cursor": None}
    assert razorpay.requests_to("GET", "/v1/invoices") == []
    # WHEN it is active and Razorpay has its invoices (the SDK's mock invoices)
    activate(database_url, razorpay, subscription_id)
    response = client.get("/subscription/invoices", headers=alice.headers)
    # THEN each is mapped to the API's fields
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        {
            "id": mock["id"],
            "amount": mock["amount"],
            "currency": mock["currency"],
            "status": mock["status"],
            "issued_at": "2016-12-12T11:18:53Z",
            "paid_at": None,
            "short_url": mock["short_url"],
        }
        for mock in sorted(MOCK_INVOICES, key=lambda item: item["id"], reverse=True)
    ]
    (request,) = razorpay.requests_to("GET", "/v1/invoices")
    assert request.query["subscription_id"] == subscription_id
    # AND a page at a time, the cursors walk the same list, the last page's cursor being null
    walked, cursor = [], None
    for _ in range(len(MOCK_INVOICES) + 1):
        params: dict[str, str | int] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/subscription/invoices", params=params, headers=alice.headers).json()
        assert len(page["items"]) <= 1
        walked += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [item["id"] for item in response.json()["items"]] and cursor is None
    # AND bob, without subscriptions, sees none of them
    assert client.get("/subscription/invoices", headers=bob.headers).json() == {"items": [], "next_cursor": None}
    # AND a Razorpay failure is a 502
    razorpay.script(Status(500))
    error_of(client.get("/subscription/invoices", headers=alice.headers), 502, "UPSTREAM_ERROR")


def test_current_subscription_with_its_history_newest_first(
    client: httpx.Client, razorpay: FakeRazorpay, alice: AppUser, db: Database
) -> None:
    # GIVEN no subscription yet
    assert client.get("/subscription", headers=alice.headers).json() == {
        "subscription": None,
        "replacement": None,
        "history": [],
    }
    # WHEN she subscribes and the webhooks grant pro, then enterprise
    subscription_id = create(client, alice)["subscription_id"]
    response = client.get("/subscription", headers=alice.headers)
    (row_id,) = [uuid.UUID(response.json()["subscription"]["id"])]
    with db.service_transaction() as conn:
        change_tier(conn, user_id=alice.id, new_tier="pro", reason="new_subscription", subscription_id=row_id)
    with db.service_transaction() as conn:
        change_tier(conn, user_id=alice.id, new_tier="enterprise", reason="upgrade", subscription_id=row_id)
    # THEN she sees the subscription and both changes, the newest first
    current = client.get("/subscription", headers=alice.headers).json()
    subscription = current["subscription"]
    assert set(subscription) == SUBSCRIPTION_FIELDS
    assert (subscription["razorpay_subscription_id"], subscription["status"], subscription["tier"]) == (
        subscription_id,
        "created",
        "pro",
    )
    assert subscription["created_at"].endswith("Z")
    assert [(h["old_tier"], h["new_tier"], h["change_reason"]) for h in current["history"]] == [
        ("pro", "enterprise", "upgrade"),
        ("free", "pro", "new_subscription"),
    ]
    assert {h["subscription_id"] for h in current["history"]} == {str(row_id)}


def test_someone_elses_subscription_is_never_shown(client: httpx.Client, alice: AppUser, bob: AppUser) -> None:
    create(client, alice)
    assert client.get("/subscription", headers=bob.headers).json() == {
        "subscription": None,
        "replacement": None,
        "history": [],
    }
    error_of(client.post("/subscription/cancel", headers=bob.headers), 404, "NOT_FOUND")


# ---------------------------------------------------------------- auth and the document


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/subscription/create"),
        ("POST", "/subscription/verify"),
        ("POST", "/subscription/cancel"),
        ("POST", "/subscription/update"),
        ("GET", "/subscription/invoices"),
        ("GET", "/subscription"),
        ("GET", "/subscription/portal"),
    ],
)
def test_every_route_but_the_plans_is_401_without_a_valid_token(
    client: httpx.Client, razorpay: FakeRazorpay, method: str, path: str
) -> None:
    for headers in ({}, {"authorization": "Bearer not-a-token"}):
        response = client.request(method, path, json={"tier": "pro"}, headers=headers)
        error_of(response, 401, "UNAUTHORIZED")
    assert razorpay.requests == []


def test_the_openapi_document_is_served_and_lists_every_route(client: httpx.Client) -> None:
    response = client.get("/subscription/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) == {
        "/subscription/plans",
        "/subscription/create",
        "/subscription/verify",
        "/subscription/cancel",
        "/subscription/update",
        "/subscription/invoices",
        "/subscription",
        "/subscription/portal",
    }
    assert "502" in paths["/subscription/create"]["post"]["responses"]
