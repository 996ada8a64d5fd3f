"""A plan change by replacement over HTTP, as a customer lives it: the billing routes and the webhooks of
the local server, against the fake Razorpay (its Checkout and its webhook bodies, signed as Razorpay
signs them), and the quota-reset sweep's plan-change part run as the scheduled function runs it.

The customer pays for pro by UPI (Razorpay refuses to edit such a plan), upgrades to enterprise and closes
the Checkout window: they keep pro, at Razorpay and in the API. When they do pay, Razorpay's activation
has the old subscription cancelled at Razorpay and the tier changes once. A later change whose Checkout
is abandoned is cancelled by the sweep after ONEAI_REPLACEMENT_CHECKOUT_HOURS, touching nothing else."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_razorpay import FakeRazorpay, Status, load_fixture
from oneai.billing.razorpay_client import RazorpayClient
from oneai.billing.replacement import sweep_replacements
from oneai.db.connection import Database
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_RAZORPAY_KEY_ID, E2E_RAZORPAY_KEY_SECRET, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e

REFUSAL = load_fixture("api_responses/api_create_subscription__failure.json")


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


def deliver(client: httpx.Client, body: bytes) -> None:
    signature = hmac.new(E2E_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": signature,
        "x-razorpay-event-id": f"evt_{uuid.uuid4().hex[:14]}",
    }
    response = client.post("/webhooks/razorpay", content=body, headers=headers)
    assert response.status_code == 200, response.text


def seen(client: httpx.Client, user: AppUser) -> dict[str, Any]:
    """What the customer sees: the subscription in force, the replacement, the tier, the history."""
    current = client.get("/subscription", headers=user.headers)
    quota = client.get("/user/quota", headers=user.headers)
    assert current.status_code == 200 and quota.status_code == 200, (current.text, quota.text)
    body = current.json()
    subscription, replacement = body["subscription"], body["replacement"]
    return {
        "subscription": None
        if subscription is None
        else (subscription["razorpay_subscription_id"], subscription["status"], subscription["tier"]),
        "replacement": None if replacement is None else replacement["razorpay_subscription_id"],
        "quota": quota.json()["subscription"],
        "history": [(h["old_tier"], h["new_tier"], h["change_reason"]) for h in body["history"]],
    }


def razorpay_client(razorpay: FakeRazorpay) -> RazorpayClient:
    return RazorpayClient(
        key_id=E2E_RAZORPAY_KEY_ID,
        key_secret=E2E_RAZORPAY_KEY_SECRET,
        base_url=razorpay.base_url,
        timeout_seconds=2,
    )


def test_upgrade_by_replacement_keeps_pro_until_razorpay_activates_enterprise_and_the_sweep_ends_abandoned_ones(
    client: httpx.Client, razorpay: FakeRazorpay, db: Database, database_url: str
) -> None:
    alice = create_user(database_url)
    # GIVEN alice pays for pro (Checkout, then Razorpay's webhooks)
    old = client.post("/subscription/create", json={"tier": "pro"}, headers=alice.headers).json()[
        "subscription_id"
    ]
    razorpay.complete_checkout(old)
    for event in ("subscription.authenticated", "subscription.activated", "subscription.charged"):
        deliver(client, razorpay.webhook_body(event, old))
    paying_pro = {
        "subscription": (old, "active", "pro"),
        "replacement": None,
        "quota": {"tier": "pro", "status": "active"},
        "history": [("free", "pro", "new_subscription")],
    }
    assert seen(client, alice) == paying_pro

    # WHEN she upgrades to enterprise and Razorpay refuses to edit a UPI subscription's plan
    razorpay.script(Status(400, REFUSAL), method="PATCH")
    update = client.post("/subscription/update", json={"tier": "enterprise"}, headers=alice.headers)
    assert update.status_code == 200, update.text
    assert (update.json()["change"], update.json()["checkout_required"]) == ("recreated", True)
    new = update.json()["subscription_id"]

    # AND closes the Checkout window: the paid pro subscription is untouched at Razorpay and in the API
    assert razorpay.subscription(old)["status"] == "active"
    assert razorpay.requests_to("POST", "/cancel") == []
    assert seen(client, alice) == paying_pro | {"replacement": new}

    # WHEN she completes Checkout after all: Razorpay authenticates the new one (still pro)...
    razorpay.complete_checkout(new)
    deliver(client, razorpay.webhook_body("subscription.authenticated", new))
    assert razorpay.subscription(old)["status"] == "active"
    # ...then activates and charges it: the activation's webhook has the old one cancelled now
    deliver(client, razorpay.webhook_body("subscription.activated", new))
    assert razorpay.subscription(old)["status"] == "cancelled"
    (cancel,) = razorpay.requests_to("POST", f"/{old}/cancel")
    assert cancel.body == {"cancel_at_cycle_end": 0}
    deliver(client, razorpay.webhook_body("subscription.charged", new))
    deliver(client, razorpay.webhook_body("subscription.cancelled", old))
    # THEN enterprise, changed once, and the replacement is the subscription in force
    enterprise = {
        "subscription": (new, "active", "enterprise"),
        "replacement": None,
        "quota": {"tier": "enterprise", "status": "active"},
        "history": [("pro", "enterprise", "upgrade"), ("free", "pro", "new_subscription")],
    }
    assert seen(client, alice) == enterprise

    # WHEN she later asks to go back to pro and abandons that Checkout too
    razorpay.script(Status(400, REFUSAL), method="PATCH")
    downgrade = client.post("/subscription/update", json={"tier": "pro"}, headers=alice.headers)
    assert downgrade.status_code == 200, downgrade.text
    abandoned = downgrade.json()["subscription_id"]
    assert seen(client, alice) == enterprise | {"replacement": abandoned}
    # THEN the sweep leaves it alone while it is younger than ONEAI_REPLACEMENT_CHECKOUT_HOURS (24 h)...
    report = sweep_replacements(db, razorpay=razorpay_client(razorpay))
    assert report.abandoned_replacements_cancelled == 0
    assert razorpay.subscription(abandoned)["status"] == "created"
    # ...and cancels it once it is older: at Razorpay and here; enterprise is untouched
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.subscriptions set created_at = created_at - %s where provider_subscription_id = %s",
            (timedelta(hours=24, minutes=1), abandoned),
        )
    report = sweep_replacements(db, razorpay=razorpay_client(razorpay))
    assert (report.abandoned_replacements_cancelled, report.replacements_skipped) == (1, False)
    assert razorpay.subscription(abandoned)["status"] == "cancelled"
    assert razorpay.subscription(new)["status"] == "active"
    assert seen(client, alice) == enterprise
    # AND a second sweep finds nothing left to do
    again = sweep_replacements(db, razorpay=razorpay_client(razorpay))
    assert (again.abandoned_replacements_cancelled, again.replaced_cancels_settled) == (0, 0)


def test_a_downgrade_by_replacement_cancels_the_old_one_at_cycle_end_once_checkout_is_done(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    bob = create_user(database_url)
    old = client.post("/subscription/create", json={"tier": "enterprise"}, headers=bob.headers).json()[
        "subscription_id"
    ]
    razorpay.complete_checkout(old)
    deliver(client, razorpay.webhook_body("subscription.activated", old))
    cycle_end = razorpay.subscription(old)["current_end"]
    # WHEN he downgrades to pro (edit refused): the new one starts when the paid cycle ends
    razorpay.script(Status(400, REFUSAL), method="PATCH")
    new = client.post("/subscription/update", json={"tier": "pro"}, headers=bob.headers).json()["subscription_id"]
    assert razorpay.subscription(new)["start_at"] == cycle_end
    # AND completes Checkout: authenticated only (its first charge is at start_at)
    assert razorpay.complete_checkout(new)["status"] == "authenticated"
    deliver(client, razorpay.webhook_body("subscription.authenticated", new))
    # THEN the old one is cancelled at the end of its cycle, not now; he keeps enterprise meanwhile
    (cancel,) = razorpay.requests_to("POST", f"/{old}/cancel")
    assert cancel.body == {"cancel_at_cycle_end": 1}
    assert razorpay.subscription(old)["status"] == "active"
    current = client.get("/subscription", headers=bob.headers).json()
    assert (
        current["subscription"]["razorpay_subscription_id"],
        current["subscription"]["cancel_at_period_end"],
    ) == (
        old,
        True,
    )
    assert current["replacement"]["razorpay_subscription_id"] == new
    assert client.get("/user/quota", headers=bob.headers).json()["subscription"]["tier"] == "enterprise"
    # AND a duplicate of that webhook asks Razorpay nothing more
    deliver(client, razorpay.webhook_body("subscription.authenticated", new))
    assert len(razorpay.requests_to("POST", f"/{old}/cancel")) == 1

    # WHEN the paid cycle ends (moved into the past here): Razorpay charges the new one and ends the old one
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.subscriptions set current_period_end = now() - interval '1 minute',"
            " paid_until = now() - interval '1 minute' where provider_subscription_id = %s",
            (old,),
        )
    now = int(time.time())
    razorpay.update_subscription(
        new, status="active", current_start=now, current_end=now + 30 * 86_400, paid_count=1
    )
    deliver(client, razorpay.webhook_body("subscription.activated", new))
    # the old one still active until Razorpay's cancel arrives: enterprise, no change yet
    assert client.get("/user/quota", headers=bob.headers).json()["subscription"]["tier"] == "enterprise"
    razorpay.update_subscription(old, status="cancelled", ended_at=now)
    deliver(client, razorpay.webhook_body("subscription.cancelled", old))
    deliver(client, razorpay.webhook_body("subscription.charged", new))
    # THEN pro, changed once; the new one is the subscription in force
    current = client.get("/subscription", headers=bob.headers).json()
    assert (current["subscription"]["razorpay_subscription_id"], current["replacement"]) == (new, None)
    assert client.get("/user/quota", headers=bob.headers).json()["subscription"] == {
        "tier": "pro",
        "status": "active",
    }
    assert [(h["old_tier"], h["new_tier"]) for h in current["history"]] == [
        ("enterprise", "pro"),
        ("free", "enterprise"),
    ]


def test_cancel_after_a_plan_change_awaiting_checkout_ends_both_and_create_works_again(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    carol = create_user(database_url)
    # GIVEN a pro subscription, changed to enterprise before it was ever paid (recreated)
    pro = client.post("/subscription/create", json={"tier": "pro"}, headers=carol.headers).json()[
        "subscription_id"
    ]
    change = client.post("/subscription/update", json={"tier": "enterprise"}, headers=carol.headers).json()
    assert change["change"] == "recreated"
    # WHEN she cancels
    cancelled = client.post("/subscription/cancel", json={}, headers=carol.headers)
    assert cancelled.status_code == 200, cancelled.text
    # THEN both are cancelled, at Razorpay and in the API: no subscription, no replacement
    assert cancelled.json()["replacement"]["razorpay_subscription_id"] == change["subscription_id"]
    assert razorpay.subscription(pro)["status"] == razorpay.subscription(change["subscription_id"])["status"]
    assert razorpay.subscription(pro)["status"] == "cancelled"
    assert seen(client, carol) | {"history": []} == {
        "subscription": None,
        "replacement": None,
        "quota": {"tier": "free", "status": "active"},
        "history": [],
    }
    # AND a cancel now finds nothing, and she can subscribe afresh
    assert client.post("/subscription/cancel", json={}, headers=carol.headers).status_code == 404
    again = client.post("/subscription/create", json={"tier": "enterprise"}, headers=carol.headers)
    assert again.status_code == 200, again.text
    assert seen(client, carol)["subscription"] == (again.json()["subscription_id"], "created", "enterprise")
