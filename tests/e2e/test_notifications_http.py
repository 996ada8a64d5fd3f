"""Notifications under the local server (what `make dev` runs), over HTTP: the domain events go to the
notifications handler in-process and every email lands in the outbox as an .eml file."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import httpx
import psycopg
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, E2E_OUTBOX, E2E_PLAN_IDS, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e
PRO_PLAN = dict(entry.split("=") for entry in E2E_PLAN_IDS.split(","))["pro"]


@pytest.fixture
def client(local_server: LocalServer) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


def emails_to(address: str) -> list[EmailMessage]:
    emails = [
        cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        for path in sorted(E2E_OUTBOX.glob("*.eml"))
    ]
    return [e for e in emails if address in str(e["To"])]


def wait_for(found: Callable[[], list[EmailMessage]], timeout: float = 15.0) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while not (emails := found()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return emails


def of_subject(address: str, text: str) -> Callable[[], list[EmailMessage]]:
    return lambda: [e for e in emails_to(address) if text in str(e["Subject"])]


def text_of(email: EmailMessage) -> str:
    part = email.get_body(preferencelist=("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


def set_small_quota(database_url: str, user: AppUser, *, used: int, limit: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = %s, quota_limit = %s, warning_level = 0"
            " where user_id = %s and quota_key = 'small_messages'",
            (used, limit, user.id),
        )


def chat_once(client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter) -> None:
    openrouter.script(Reply(chunks=["fine"]), model=CHAT_MODEL)
    response = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "hello"}, headers=user.headers)
    assert response.status_code == 200, response.text


def charged_body(user_id: uuid.UUID, subscription_id: str, payment_id: str) -> bytes:
    now = int(time.time())
    document = {
        "entity": "event",
        "account_id": "acc_E2ENotifications",
        "event": "subscription.charged",
        "contains": ["subscription", "payment"],
        "payload": {
            "subscription": {
                "entity": {
                    "id": subscription_id,
                    "entity": "subscription",
                    "plan_id": PRO_PLAN,
                    "customer_id": "cust_E2ENotify",
                    "status": "active",
                    "current_start": now,
                    "current_end": now + 30 * 86_400,
                    "notes": {"user_id": str(user_id), "tier": "pro"},
                    "paid_count": 1,
                    "created_at": now - 60,
                }
            },
            "payment": {
                "entity": {
                    "id": payment_id,
                    "entity": "payment",
                    "amount": 49900,
                    "currency": "INR",
                    "status": "captured",
                    "method": "card",
                    "captured": True,
                    "customer_id": "cust_E2ENotify",
                    "created_at": now,
                }
            },
        },
        "created_at": now,
    }
    return json.dumps(document).encode()


def test_a_quota_warning_unsubscribe_and_a_receipt_through_the_outbox(
    local_server: LocalServer, client: httpx.Client, openrouter: FakeOpenRouter, database_url: str
) -> None:
    user = create_user(database_url)
    address = str(user.principal.email)
    # GIVEN 3 of 5 small messages used; WHEN one more is sent (80 %)
    set_small_quota(database_url, user, used=3, limit=5)
    chat_once(client, user, openrouter)
    # THEN one warning is in the outbox, with both parts and the RFC 8058 headers (and a welcome: first request)
    [warning] = wait_for(of_subject(address, "80 %"))
    assert "4 of your 5 messages to small models" in text_of(warning)
    assert warning.get_body(preferencelist=("html",)) is not None
    assert warning["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(warning["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{local_server.base_url}/notifications/unsubscribe?token=")
    assert len(wait_for(of_subject(address, "Welcome to OneAI"))) == 1

    # WHEN a mail scanner fetches the link THEN nothing changes (a page with a button)
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text
    profile = client.get("/user/profile", headers=user.headers).json()
    assert "notifications" not in profile["preferences"]  # not set: every switch at its default, on
    # WHEN the mail client posts the one-click unsubscribe (no login) THEN quota warnings are off
    clicked = httpx.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert clicked.status_code == 200, clicked.text
    profile = client.get("/user/profile", headers=user.headers).json()
    assert profile["preferences"]["notifications"] == {"quota_warnings": False}

    # WHEN the next threshold (100 %) is crossed, and then Razorpay charges the user's new subscription
    chat_once(client, user, openrouter)
    body = charged_body(user.id, f"sub_E2ENotify{uuid.uuid4().hex[:8]}", f"pay_E2ENotify{uuid.uuid4().hex[:8]}")
    signature = hmac.new(E2E_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        f"{local_server.base_url}/webhooks/razorpay",
        content=body,
        headers={
            "content-type": "application/json",
            "x-razorpay-signature": signature,
            "x-razorpay-event-id": f"evt_{uuid.uuid4().hex}",
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    # THEN a receipt with the amount is written (events are handled in order: the warning came first)
    [receipt] = wait_for(of_subject(address, "Payment received"))
    assert receipt["Subject"] == "Payment received: INR 499.00"
    assert "INR 499.00 for the pro plan" in text_of(receipt)
    # and no second warning was sent
    assert [str(e["Subject"]) for e in emails_to(address) if "%" in str(e["Subject"])] == [str(warning["Subject"])]


def test_notification_preferences_are_validated_and_merged(client: httpx.Client, database_url: str) -> None:
    user = create_user(database_url)
    bad_values: list[Any] = [{"billing": "no"}, {"billing": 0}, {"sms": True}, "off", [True]]
    for bad in bad_values:
        response = client.patch(
            "/user/profile", json={"preferences": {"notifications": bad}}, headers=user.headers
        )
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    # switches merge one by one, null puts one back to its default, other preferences stay
    steps: list[tuple[dict[str, Any], dict[str, bool]]] = [
        ({"theme": "dark", "notifications": {"billing": False}}, {"billing": False}),
        (
            {"notifications": {"usage_summary": False, "product": True}},
            {"billing": False, "usage_summary": False, "product": True},
        ),
        ({"notifications": {"billing": None}}, {"usage_summary": False, "product": True}),
    ]
    for patch, switches in steps:
        response = client.patch("/user/profile", json={"preferences": patch}, headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["preferences"]["notifications"] == switches
        assert response.json()["preferences"]["theme"] == "dark"


def test_a_bad_unsubscribe_link_is_400_and_changes_nothing(local_server: LocalServer) -> None:
    for token in ["", "abc", f"{uuid.uuid4().hex}.billing.AAAA"]:
        response = httpx.post(
            f"{local_server.base_url}/notifications/unsubscribe", params={"token": token}, timeout=10
        )
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["code"] in ("BAD_REQUEST", "VALIDATION_ERROR")
