"""Razorpay webhooks over HTTP through the local server (`make dev`): `POST /webhooks/razorpay` reaches the
webhooks handler with a Function URL (payload v2) event, as the deployed Function URL does, and the
signature is checked over the exact bytes that were posted."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_razorpay import FIXTURES_DIR
from tests.conftest import create_user
from tests.e2e.conftest import E2E_PLAN_IDS, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e

CHARGED = FIXTURES_DIR / "docs_webhooks" / "subscription.charged.json"
PRO_PLAN = dict(entry.split("=") for entry in E2E_PLAN_IDS.split(","))["pro"]


def signed_charge(user_id: uuid.UUID, subscription_id: str) -> bytes:
    """Razorpay's published subscription.charged sample, for our user's new subscription."""
    document: dict[str, Any] = copy.deepcopy(json.loads(CHARGED.read_bytes()))
    now = int(time.time())
    document["created_at"] = now
    entity = document["payload"]["subscription"]["entity"]
    entity.update(
        id=subscription_id,
        plan_id=PRO_PLAN,
        current_start=now,
        current_end=now + 30 * 86_400,
        notes={"user_id": str(user_id), "tier": "pro", "source": "e2e – ✓"},
    )
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def post(server: LocalServer, body: bytes, signature: str | None, event_id: str) -> httpx.Response:
    headers = {"content-type": "application/json", "x-razorpay-event-id": event_id}
    if signature is not None:
        headers["x-razorpay-signature"] = signature
    return httpx.post(f"{server.base_url}/webhooks/razorpay", content=body, headers=headers, timeout=10)


def tier_of(database_url: str, user_id: uuid.UUID) -> tuple[str, str]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select subscription_tier, subscription_status from public.users where id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_signed_delivery_is_applied_and_a_bad_signature_is_refused(
    local_server: LocalServer, database_url: str
) -> None:
    user = create_user(database_url)
    subscription_id = f"sub_E{uuid.uuid4().hex[:13]}"
    body = signed_charge(user.id, subscription_id)
    signature = hmac.new(E2E_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()

    # a bad signature (the body with one byte changed) and a missing one: 400, nothing changes
    tampered = body.replace(b'"active"', b'"activf"', 1)
    for bad_signature, sent in ((signature, tampered), (None, body), ("0" * 64, body)):
        refused = post(local_server, sent, bad_signature, f"evt_bad_{uuid.uuid4().hex[:8]}")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "BAD_REQUEST"
        assert refused.headers["content-type"] == "application/json"
    assert tier_of(database_url, user.id) == ("free", "active")

    # the signed delivery: 200 and the user is on pro; its redelivery: 200 and nothing more
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    for _ in range(2):
        answer = post(local_server, body, signature, event_id)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
        assert answer.headers["x-amzn-requestid"]
    assert tier_of(database_url, user.id) == ("pro", "active")
    with psycopg.connect(database_url) as conn:
        reasons = conn.execute(
            "select change_reason from public.subscription_history where user_id = %s", (user.id,)
        ).fetchall()
    assert reasons == [("new_subscription",)]


def test_only_post_reaches_the_webhook(local_server: LocalServer) -> None:
    answer = httpx.get(f"{local_server.base_url}/webhooks/razorpay", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "NOT_FOUND"
