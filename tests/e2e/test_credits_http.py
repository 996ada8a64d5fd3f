"""Workspace credits over HTTP through the local server (issue 26): an owner buys credits with a Razorpay
Order from the fake Razorpay, the customer pays, Razorpay's webhooks (signed, duplicated, reordered) reach the
webhooks function, and the balance grows exactly once; the ledger, the usage breakdown (JSON and CSV), the
workspace's stats and an admin's audited grant show it. A stranger gets 404, a viewer 403."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from local.fake_razorpay import FakeRazorpay
from tests.conftest import AppUser, create_user, token_for
from tests.e2e.conftest import E2E_RAZORPAY_KEY_ID, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


def webhook(client: httpx.Client, body: bytes, event_id: str, *, secret: str = E2E_WEBHOOK_SECRET) -> int:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": signature,
        "x-razorpay-event-id": event_id,
    }
    return client.post("/webhooks/razorpay", content=body, headers=headers).status_code


def team(client: httpx.Client, database_url: str, owner: AppUser, viewer: AppUser) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:  # pro: room for a second workspace
        conn.execute("update public.users set subscription_tier = 'pro' where id = %s", (owner.id,))
    created = client.post("/workspaces", json={"name": f"Acme {uuid.uuid4().hex[:6]}"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    workspace_id = str(created.json()["id"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'viewer')",
            (workspace_id, viewer.id),
        )
    return workspace_id


def test_a_purchase_from_order_to_webhooks_credits_the_balance_once(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    owner, viewer, stranger = create_user(database_url), create_user(database_url), create_user(database_url)
    workspace_id = team(client, database_url, owner, viewer)
    base = f"/workspaces/{workspace_id}/credits"
    assert client.get(base, headers=viewer.headers).json() == {
        "balance": "0.00",
        "currency": "INR",
        "low_balance_threshold": "100.00",
    }
    assert client.get(base, headers=stranger.headers).status_code == 404
    assert client.post(f"{base}/purchase", json={"amount": "500.00"}, headers=viewer.headers).status_code == 403
    assert client.post(f"{base}/purchase", json={"amount": "500.00"}, headers=stranger.headers).status_code == 404
    for bad in ("99.99", "100000.01", "12.345", 500.5, "-5", "abc"):
        refused = client.post(f"{base}/purchase", json={"amount": bad}, headers=owner.headers)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["details"]["errors"][0]["field"].endswith("amount")

    bought = client.post(f"{base}/purchase", json={"amount": "500.00"}, headers=owner.headers)
    assert bought.status_code == 200, bought.text
    checkout = bought.json()
    assert {k: checkout[k] for k in ("razorpay_key_id", "amount", "currency", "credits")} == {
        "razorpay_key_id": E2E_RAZORPAY_KEY_ID,
        "amount": 50000,
        "currency": "INR",
        "credits": "500.00",
    }
    order_id = checkout["order_id"]
    assert razorpay.order(order_id)["amount"] == 50000
    assert client.get(base, headers=owner.headers).json()["balance"] == "0.00"  # not before Razorpay says so

    payment = razorpay.pay_order(order_id)
    paid = razorpay.order_webhook_body("order.paid", order_id, payment["id"])
    captured = razorpay.order_webhook_body("payment.captured", order_id, payment["id"])
    # a forged one adds nothing
    assert webhook(client, paid, "evt_forged", secret="not-the-webhook-secret") == 400
    # order.paid before payment.captured, each twice (a redelivery and a second delivery)
    for body, event_id in (
        (paid, "evt_paid"),
        (paid, "evt_paid"),
        (captured, "evt_captured"),
        (captured, "evt_c2"),
    ):
        assert webhook(client, body, f"{event_id}_{order_id}") == 200

    assert client.get(base, headers=viewer.headers).json()["balance"] == "500.00"
    listed = client.get(f"{base}/transactions", headers=owner.headers)
    assert listed.status_code == 200
    assert [
        (t["type"], t["amount"], t["balance_after"], t["razorpay_order_id"]) for t in listed.json()["items"]
    ] == [("purchase", "500.00", "500.00", order_id)]
    assert client.get(f"{base}/transactions?type=usage", headers=owner.headers).json()["items"] == []
    assert client.get(f"{base}/transactions", headers=viewer.headers).status_code == 403
    workspace = client.get(f"/workspaces/{workspace_id}", headers=viewer.headers).json()
    assert workspace["stats"]["credits_balance"] == "500.00"

    usage = client.get(f"{base}/usage?group_by=model&from=2026-01-01", headers=owner.headers)
    assert usage.status_code == 200 and usage.json()["items"] == [] and usage.json()["group_by"] == "model"
    csv = client.get(f"{base}/usage?group_by=chatbot", headers={**owner.headers, "accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["chatbot,messages,prompt_tokens,completion_tokens,cost_usd,credits_inr"]
    assert client.get(f"{base}/usage?group_by=week", headers=owner.headers).status_code == 422

    # an admin of the product grants more, audited
    staff = create_user(database_url)
    admin_headers = {
        "authorization": f"Bearer {token_for(staff.id, staff.principal.email, extra_claims={'app_metadata': {'role': 'admin'}})}"
    }
    granted = client.post(
        f"/admin/workspaces/{workspace_id}/credits/grant",
        json={"amount": "25.50", "reason": "Sorry for the outage"},
        headers=admin_headers,
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["balance"] == "525.50"
    assert (
        client.post(
            f"/admin/workspaces/{workspace_id}/credits/grant",
            json={"amount": "1", "reason": "x"},
            headers=owner.headers,
        ).status_code
        == 403
    )
    audit = client.get("/admin/audit-log", headers=admin_headers).json()["items"]
    assert any(e["action"] == "workspace.credits_grant" and e["target_id"] == workspace_id for e in audit)
    assert client.get(base, headers=owner.headers).json()["balance"] == "525.50"


def test_a_refund_webhook_and_an_admin_adjustment_show_in_the_balance_and_the_ledger(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    owner, viewer = create_user(database_url), create_user(database_url)
    workspace_id = team(client, database_url, owner, viewer)
    base = f"/workspaces/{workspace_id}/credits"
    bought = client.post(f"{base}/purchase", json={"amount": "500.00"}, headers=owner.headers)
    assert bought.status_code == 200, bought.text
    order_id = bought.json()["order_id"]
    payment = razorpay.pay_order(order_id)
    assert (
        webhook(client, razorpay.order_webhook_body("order.paid", order_id, payment["id"]), f"evt_p_{order_id}")
        == 200
    )
    assert client.get(base, headers=viewer.headers).json()["balance"] == "500.00"

    # the merchant refunds 120.25 of it at Razorpay: refund.processed, delivered twice, and a forged copy
    refund = razorpay.refund_payment(payment["id"], amount=12025)
    body = razorpay.refund_webhook_body(refund["id"])
    assert webhook(client, body, f"evt_forged_{refund['id']}", secret="not-the-webhook-secret") == 400
    assert webhook(client, body, f"evt_r_{refund['id']}") == 200
    assert webhook(client, body, f"evt_r2_{refund['id']}") == 200
    assert client.get(base, headers=viewer.headers).json()["balance"] == "379.75"
    refunds = client.get(f"{base}/transactions?type=refund", headers=owner.headers).json()["items"]
    assert [(t["type"], t["amount"], t["balance_after"], t["razorpay_refund_id"]) for t in refunds] == [
        ("refund", "-120.25", "379.75", refund["id"])
    ]

    # an admin of the product corrects the balance down, within what is available; audited
    staff = create_user(database_url)
    admin_headers = {
        "authorization": f"Bearer {token_for(staff.id, staff.principal.email, extra_claims={'app_metadata': {'role': 'admin'}})}"
    }
    adjust = f"/admin/workspaces/{workspace_id}/credits/adjust"
    too_much = client.post(adjust, json={"amount": "-379.76", "reason": "x"}, headers=admin_headers)
    assert too_much.status_code == 422 and too_much.json()["error"]["code"] == "VALIDATION_ERROR", too_much.text
    assert client.post(adjust, json={"amount": "0", "reason": "x"}, headers=admin_headers).status_code == 422
    assert client.post(adjust, json={"amount": "-1", "reason": "x"}, headers=owner.headers).status_code == 403
    adjusted = client.post(adjust, json={"amount": "-79.75", "reason": "Double grant"}, headers=admin_headers)
    assert adjusted.status_code == 200, adjusted.text
    assert (adjusted.json()["amount"], adjusted.json()["balance"]) == ("-79.75", "300.00")
    assert client.get(base, headers=owner.headers).json()["balance"] == "300.00"
    adjustments = client.get(f"{base}/transactions?type=adjustment", headers=owner.headers).json()["items"]
    assert [(t["amount"], t["reason"], t["actor_id"]) for t in adjustments] == [
        ("-79.75", "Double grant", str(staff.id))
    ]
    audit = client.get("/admin/audit-log", headers=admin_headers).json()["items"]
    assert any(e["action"] == "workspace.credits_adjust" and e["target_id"] == workspace_id for e in audit)
