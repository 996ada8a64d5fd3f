"""The whole life of a paid subscription over HTTP, through the local server: the billing routes against
the fake Razorpay API, then Razorpay's webhooks (signed, as Razorpay sends them) deciding the tier.

create -> verify -> activated (pro quotas, usage reset) -> charged (next period) -> pending (still pro,
grace set) -> halted (free, payment_failure) -> charged again (pro)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_razorpay import FIXTURES_DIR, FakeRazorpay
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_PLAN_IDS, E2E_RAZORPAY_KEY_SECRET, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e

SAMPLES = FIXTURES_DIR / "docs_webhooks"
PRO_PLAN = dict(entry.split("=") for entry in E2E_PLAN_IDS.split(","))["pro"]
DAY = 86_400
SAMPLE_FILES = {"subscription.activated": "subscription.activated__immediate_start_date_upfront_amount_both"}


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


def webhook(name: str, subscription_id: str, user: AppUser, *, at: int, period_end: int | None) -> bytes:
    """Razorpay's published sample of `name`, for our user's subscription, sent at `at`."""
    path = SAMPLES / f"{SAMPLE_FILES.get(name, name)}.json"
    assert path.is_file(), f"Razorpay sample bodies are expected at {SAMPLES}"
    document: dict[str, Any] = copy.deepcopy(json.loads(path.read_bytes()))
    document["created_at"] = at
    entity = document["payload"]["subscription"]["entity"]
    entity.update(
        id=subscription_id,
        plan_id=PRO_PLAN,
        current_start=None if period_end is None else period_end - 30 * DAY,
        current_end=period_end,
        notes={"user_id": str(user.id), "tier": "pro"},
    )
    return json.dumps(document, ensure_ascii=False).encode()


def deliver(client: httpx.Client, body: bytes) -> None:
    signature = hmac.new(E2E_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": signature,
        "x-razorpay-event-id": f"evt_{uuid.uuid4().hex[:14]}",
    }
    response = client.post("/webhooks/razorpay", content=body, headers=headers)
    assert response.status_code == 200, response.text


def state(database_url: str, user: AppUser, subscription_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select u.subscription_tier as tier, u.subscription_status as user_status, s.status, s.paid_until,"
            " s.grace_until, q.quota_limit as small_limit, q.used_count as small_used"
            " from public.users u"
            " join public.subscriptions s on s.user_id = u.id and s.provider_subscription_id = %s"
            " join public.usage_quotas q on q.user_id = u.id and q.quota_key = 'small_messages'"
            " where u.id = %s",
            (subscription_id, user.id),
        ).fetchone()
        reasons = conn.execute(
            "select change_reason from public.subscription_history where user_id = %s order by changed_at, id",
            (user.id,),
        ).fetchall()
    assert row is not None
    names = ("tier", "user_status", "status", "paid_until", "grace_until", "small_limit", "small_used")
    return dict(zip(names, row, strict=True)) | {"reasons": [r[0] for r in reasons]}


def test_a_subscription_from_checkout_to_halted_and_back(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    user = create_user(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:  # some free usage before paying
        conn.execute(
            "update public.usage_quotas set used_count = 42 where user_id = %s and quota_key = 'small_messages'",
            (user.id,),
        )
    # create: Razorpay makes the subscription, we store it as `created`
    created = client.post("/subscription/create", json={"tier": "pro"}, headers=user.headers)
    assert created.status_code == 200, created.text
    sub_id = created.json()["subscription_id"]
    assert created.json()["short_url"]
    # verify: Checkout's signature over payment_id|subscription_id, provisional only
    signature = hmac.new(E2E_RAZORPAY_KEY_SECRET.encode(), f"pay_lifecycle1|{sub_id}".encode(), hashlib.sha256)
    verified = client.post(
        "/subscription/verify",
        json={
            "razorpay_payment_id": "pay_lifecycle1",
            "razorpay_subscription_id": sub_id,
            "razorpay_signature": signature.hexdigest(),
        },
        headers=user.headers,
    )
    assert verified.status_code == 200 and verified.json()["verified"] is True
    assert state(database_url, user, sub_id)["tier"] == "free"

    now = int(time.time())
    first_end = now + 30 * DAY
    # activated: pro, with pro's quotas and usage reset
    deliver(client, webhook("subscription.activated", sub_id, user, at=now, period_end=first_end))
    after = state(database_url, user, sub_id)
    assert (after["tier"], after["status"], after["small_limit"], after["small_used"]) == ("pro", "active", 500, 0)
    assert after["reasons"] == ["new_subscription"]
    assert after["paid_until"] == datetime.fromtimestamp(first_end, UTC)

    # charged: the next period is paid, paid-until moves forward, nothing else changes
    second_end = first_end + 30 * DAY
    deliver(client, webhook("subscription.charged", sub_id, user, at=now + 10, period_end=second_end))
    after = state(database_url, user, sub_id)
    assert (after["tier"], after["status"], after["paid_until"]) == (
        "pro",
        "active",
        datetime.fromtimestamp(second_end, UTC),
    )
    assert after["reasons"] == ["new_subscription"]

    # pending: a renewal payment is failing; pro is kept through a grace period
    deliver(client, webhook("subscription.pending", sub_id, user, at=now + 20, period_end=second_end))
    after = state(database_url, user, sub_id)
    assert (after["tier"], after["user_status"], after["status"]) == ("pro", "pending", "pending")
    assert after["grace_until"] is not None
    assert after["grace_until"] - datetime.fromtimestamp(now + 20, UTC) == timedelta(days=3)

    # halted: Razorpay gave up on the payment; free, for a payment failure
    deliver(client, webhook("subscription.halted", sub_id, user, at=now + 30, period_end=second_end))
    after = state(database_url, user, sub_id)
    assert (after["tier"], after["status"], after["small_limit"]) == ("free", "halted", 100)
    assert after["reasons"] == ["new_subscription", "payment_failure"]

    # charged again: the customer paid; pro again (an upgrade from free, usage reset)
    third_end = second_end + 30 * DAY
    deliver(client, webhook("subscription.charged", sub_id, user, at=now + 40, period_end=third_end))
    after = state(database_url, user, sub_id)
    assert (after["tier"], after["status"], after["small_limit"], after["small_used"]) == ("pro", "active", 500, 0)
    assert after["reasons"] == ["new_subscription", "payment_failure", "upgrade"]
    assert after["paid_until"] == datetime.fromtimestamp(third_end, UTC)
    # and the user sees it all through the API
    current = client.get("/subscription", headers=user.headers).json()
    assert current["subscription"]["status"] == "active"
    assert [h["change_reason"] for h in current["history"]] == ["upgrade", "payment_failure", "new_subscription"]
    assert client.get("/user/quota", headers=user.headers).json()["subscription"] == {
        "tier": "pro",
        "status": "active",
    }
