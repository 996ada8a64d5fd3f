"""`DELETE /user`, `GET /user/export` and `GET /subscription/portal` over HTTP through the local server,
with Razorpay behind it being the fake Razorpay over a real socket.

A user's data is made the way the product makes it where that is short (conversations and share links
through the API, the subscription through create, Checkout and Razorpay's webhook) and written directly
where the API path is long (messages with a revision, usage records)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from local.fake_razorpay import FakeRazorpay, Status
from oneai.account.erasure import erase_account
from oneai.billing.razorpay_client import RazorpayClient
from oneai.db import notifications as notifications_repo
from oneai.db.connection import Database
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_RAZORPAY_KEY_ID, E2E_RAZORPAY_KEY_SECRET, E2E_WEBHOOK_SECRET, LocalServer

pytestmark = pytest.mark.e2e

# Every single-column foreign key to a user: each such table must be erased (cascade) or keep its rows
# without the user (set null). A table added later (api_keys, attachments) is checked with no change here.
USER_REFERENCES = """
select n.nspname || '.' || t.relname as table_name, a.attname as column_name, c.confdeltype as on_delete
from pg_constraint c
join pg_class t on t.oid = c.conrelid
join pg_namespace n on n.oid = t.relnamespace
join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
where c.contype = 'f' and cardinality(c.conkey) = 1
  and c.confrelid in ('public.users'::regclass, 'auth.users'::regclass)
order by 1, 2"""


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


def deliver(client: httpx.Client, body: bytes) -> None:
    signature = hmac.new(E2E_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-razorpay-signature": signature, "x-razorpay-event-id": f"evt_{uuid.uuid4().hex[:14]}"}
    assert client.post("/webhooks/razorpay", content=body, headers=headers).status_code == 200


@dataclass(frozen=True)
class Account:
    user: AppUser
    conversation_id: str
    subscription_id: str
    usage_ids: list[uuid.UUID]
    share_token: str


def make_account(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str, *, paying: bool = True
) -> Account:
    user = create_user(database_url)
    conversation = client.post("/conversations", json={"title": "Plans for Goa"}, headers=user.headers)
    assert conversation.status_code == 201, conversation.text
    conversation_id = conversation.json()["id"]
    usage_ids = [uuid.uuid4(), uuid.uuid4()]
    with psycopg.connect(database_url, autocommit=True) as conn:
        first = conn.execute(
            "insert into public.chat_messages (conversation_id, user_id, role, content, model_id, sequence_number,"
            " is_latest) values (%s, %s, 'user', 'Where should we stay?', 'openai/gpt-4o-mini', 1, false)"
            " returning id",
            (conversation_id, user.id),
        ).fetchone()
        assert first is not None
        conn.execute(
            "insert into public.chat_messages (conversation_id, user_id, role, content, model_id, sequence_number,"
            " original_message_id, revision_number, revision_type)"
            " values (%s, %s, 'user', 'Where should we stay in Goa?', 'openai/gpt-4o-mini', 1, %s, 1, 'user_edit')",
            (conversation_id, user.id, first[0]),
        )
        for usage_id in usage_ids:
            conn.execute(
                "insert into public.usage_records (id, user_id, conversation_id, quota_key, requested_model, model_id,"
                " prompt_tokens, completion_tokens, cost) values (%s, %s, %s, 'small_messages', 'openai/gpt-4o-mini',"
                " 'openai/gpt-4o-mini', 12, 40, 0.000123)",
                (usage_id, user.id, conversation_id),
            )
    share = client.post(f"/conversations/{conversation_id}/share", headers=user.headers)
    assert share.status_code in (200, 201), share.text
    subscription_id = ""
    if paying:
        created = client.post("/subscription/create", json={"tier": "pro"}, headers=user.headers)
        subscription_id = created.json()["subscription_id"]
        razorpay.complete_checkout(subscription_id)
        deliver(client, razorpay.webhook_body("subscription.activated", subscription_id))
    return Account(user, conversation_id, subscription_id, usage_ids, share.json()["token"])


def rows_of(database_url: str, user_id: uuid.UUID) -> dict[str, int]:
    """How many rows of every table that references users name this user, and the user rows themselves."""
    counts: dict[str, int] = {}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        for ref in conn.execute(USER_REFERENCES).fetchall():
            row = conn.execute(
                f"select count(*) as n from {ref['table_name']} where {ref['column_name']} = %s",  # noqa: S608 - catalog names
                (user_id,),
            ).fetchone()
            assert row is not None
            counts[f"{ref['table_name']}.{ref['column_name']}"] = row["n"]
        for table in ("public.users", "auth.users"):
            row = conn.execute(f"select count(*) as n from {table} where id = %s", (user_id,)).fetchone()  # noqa: S608
            assert row is not None
            counts[table] = row["n"]
    return counts


def usage_owners(database_url: str, usage_ids: list[uuid.UUID]) -> list[Any]:
    with psycopg.connect(database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "select user_id from public.usage_records where id = any(%s) order by id", (usage_ids,)
            ).fetchall()
        ]


def test_every_reference_to_a_user_is_erased_or_kept_without_the_user(database_url: str) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        references = conn.execute(USER_REFERENCES).fetchall()
    assert references, "no table references users?"
    kept = {f"{r['table_name']}.{r['column_name']}" for r in references if r["on_delete"] == "n"}
    # Usage records and the credits ledger stay for the books (a grant keeps its amount and reason, an order
    # its payment, without the admin or the buyer); what a member made for a workspace (a document, a
    # chatbot, a provider key, a webhook endpoint) stays with the workspace when another owner keeps it: only
    # the maker's id goes.
    assert kept == {
        "public.usage_records.user_id",
        "public.documents.created_by",
        "public.chatbots.created_by",
        "public.credit_transactions.actor_id",
        "public.credit_orders.created_by",
        "public.provider_keys.created_by",
        "public.webhook_endpoints.created_by",
    }
    assert all(r["on_delete"] in ("c", "n") for r in references), references


def test_delete_user_cancels_the_subscription_at_razorpay_first_then_leaves_no_row_of_the_user(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    alice = make_account(client, razorpay, database_url)
    bob = make_account(client, razorpay, database_url)
    bob_before = rows_of(database_url, bob.user.id)
    assert all(rows_of(database_url, alice.user.id)[k] > 0 for k in ("public.conversations.user_id", "auth.users"))

    response = client.delete("/user", headers=alice.user.headers)

    assert response.status_code == 204, response.text
    assert response.content == b""
    # the subscription was cancelled at Razorpay, now (not at the end of the cycle)
    assert razorpay.subscription(alice.subscription_id)["status"] == "cancelled"
    (cancel,) = razorpay.requests_to("POST", f"/{alice.subscription_id}/cancel")
    assert cancel.body == {"cancel_at_cycle_end": 0}
    # no row of alice is left anywhere; her usage records are kept, without her id
    assert set(rows_of(database_url, alice.user.id).values()) == {0}
    assert usage_owners(database_url, alice.usage_ids) == [None, None]
    # her public share link shows nothing any more
    assert client.get(f"/shared/{alice.share_token}").status_code == 404
    assert client.get(f"/shared/{bob.share_token}").status_code == 200
    # bob is untouched
    assert rows_of(database_url, bob.user.id) == bob_before
    assert razorpay.subscription(bob.subscription_id)["status"] == "active"
    # a retry (the answer was lost) is 204 again and asks Razorpay nothing more
    assert client.delete("/user", headers=alice.user.headers).status_code == 204
    assert len(razorpay.requests_to("POST", "/cancel")) == 1
    # a late webhook of the cancelled subscription is acknowledged and brings nothing back
    deliver(client, razorpay.webhook_body("subscription.cancelled", alice.subscription_id))
    assert set(rows_of(database_url, alice.user.id).values()) == {0}


def test_when_razorpay_fails_nothing_is_erased_and_the_answer_says_so(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    alice = make_account(client, razorpay, database_url)
    before = rows_of(database_url, alice.user.id)
    razorpay.script(Status(502), method="POST")

    response = client.delete("/user", headers=alice.user.headers)

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "UPSTREAM_ERROR" and "nothing was erased" in error["message"]
    assert E2E_RAZORPAY_KEY_SECRET not in response.text
    assert rows_of(database_url, alice.user.id) == before
    assert razorpay.subscription(alice.subscription_id)["status"] == "active"
    assert client.get("/user/profile", headers=alice.user.headers).status_code == 200


def test_a_failure_between_the_steps_is_finished_by_a_retry(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str, db: Database
) -> None:
    alice = make_account(client, razorpay, database_url)
    fake_client = RazorpayClient(
        key_id=E2E_RAZORPAY_KEY_ID,
        key_secret=E2E_RAZORPAY_KEY_SECRET,
        base_url=razorpay.base_url,
        timeout_seconds=2,
    )

    def storage_down(_db: Database, _user_id: uuid.UUID) -> None:
        raise ConnectionError("the file store is unreachable")

    # GIVEN an erasure that stops after Razorpay cancelled, in the step that deletes the user's files
    with pytest.raises(ConnectionError):
        erase_account(db, alice.user.id, razorpay=lambda: fake_client, external_steps=[storage_down])
    # THEN the subscription is cancelled (and recorded so), but no row is erased yet
    assert razorpay.subscription(alice.subscription_id)["status"] == "cancelled"
    assert rows_of(database_url, alice.user.id)["public.conversations.user_id"] == 1
    # WHEN the user retries DELETE /user
    response = client.delete("/user", headers=alice.user.headers)
    # THEN the job is finished: nothing is asked of Razorpay again, and no row is left
    assert response.status_code == 204, response.text
    assert len(razorpay.requests_to("POST", "/cancel")) == 1
    assert set(rows_of(database_url, alice.user.id).values()) == {0}


def test_export_is_a_json_download_of_everything_held_about_the_caller_and_nobody_else(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    alice = make_account(client, razorpay, database_url)
    bob = make_account(client, razorpay, database_url, paying=False)

    response = client.get("/user/export", headers=alice.user.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"oneai-export-{alice.user.id}-" in disposition
    document = json.loads(response.content)
    assert document["profile"]["id"] == str(alice.user.id)
    assert document["profile"]["email"].endswith("@example.test")
    (conversation,) = document["conversations"]
    assert (conversation["id"], conversation["title"]) == (alice.conversation_id, "Plans for Goa")
    # both revisions of the message, the current one marked
    contents = [(m["content"], m["revision_number"], m["is_latest"]) for m in conversation["messages"]]
    assert contents == [("Where should we stay?", 0, False), ("Where should we stay in Goa?", 1, True)]
    (share,) = document["share_links"]
    assert share["conversation_id"] == alice.conversation_id and share["token"]
    assert {q["quota_key"] for q in document["quotas"]} == {"small_messages", "large_messages", "image_generation"}
    assert [(u["cost"], u["total_tokens"]) for u in document["usage"]] == [("0.000123", 52), ("0.000123", 52)]
    (subscription,) = document["subscriptions"]
    assert (subscription["provider_subscription_id"], subscription["status"], subscription["tier"]) == (
        alice.subscription_id,
        "active",
        "pro",
    )
    assert [h["change_reason"] for h in document["subscription_history"]] == ["new_subscription"]
    assert document["invoices"] == []
    assert document["exported_at"].endswith("Z") and conversation["created_at"].endswith("Z")
    assert subscription["current_period_end"].endswith("Z")
    # nothing of bob's
    assert bob.conversation_id not in response.text and str(bob.user.id) not in response.text


def test_portal_is_razorpays_page_of_the_live_subscription_and_404_without_one(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    carol = create_user(database_url)
    # no subscription: 404
    response = client.get("/subscription/portal", headers=carol.headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    # a subscription that awaits Checkout has no payment method yet: 404
    created = client.post("/subscription/create", json={"tier": "pro"}, headers=carol.headers).json()
    assert client.get("/subscription/portal", headers=carol.headers).status_code == 404
    # paid: the subscription's page at Razorpay, as Razorpay holds it now
    razorpay.complete_checkout(created["subscription_id"])
    deliver(client, razorpay.webhook_body("subscription.activated", created["subscription_id"]))
    razorpay.update_subscription(created["subscription_id"], short_url="https://rzp.io/i/carolNow")
    response = client.get("/subscription/portal", headers=carol.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"url": "https://rzp.io/i/carolNow"}
    assert razorpay.requests_to("GET", f"/v1/subscriptions/{created['subscription_id']}")
    # someone else never gets it
    dave = create_user(database_url)
    assert client.get("/subscription/portal", headers=dave.headers).status_code == 404
    # Razorpay down: 502
    razorpay.script(Status(500), method="GET")
    response = client.get("/subscription/portal", headers=carol.headers)
    assert response.status_code == 502 and response.json()["error"]["code"] == "UPSTREAM_ERROR"


def test_export_lists_the_callers_api_keys_without_the_secret_and_the_emails_sent_to_them(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str, db: Database
) -> None:
    alice = make_account(client, razorpay, database_url, paying=False)
    bob = make_account(client, razorpay, database_url, paying=False)
    # GIVEN two API keys of alice's, one revoked, one of bob's
    keys = {}
    for user, name in ((alice, "laptop"), (alice, "old script"), (bob, "bob's key")):
        created = client.post("/user/api-keys", json={"name": name}, headers=user.user.headers)
        assert created.status_code == 201, created.text
        keys[name] = created.json()
    assert (
        client.delete(f"/user/api-keys/{keys['old script']['id']}", headers=alice.user.headers).status_code == 204
    )
    # and the notifications function's records: a receipt sent to alice, a warning still being sent, bob's
    with db.service_transaction() as conn:
        assert notifications_repo.claim(conn, alice.user.id, "payment_received", "pay_ExportReceipt01")
        notifications_repo.mark_sent(conn, alice.user.id, "payment_received", "pay_ExportReceipt01", "ses-id-01")
        assert notifications_repo.claim(conn, alice.user.id, "quota_warning", "small_messages:2026-11-23:80")
        assert notifications_repo.claim(conn, bob.user.id, "payment_received", "pay_BobReceipt0001")

    response = client.get("/user/export", headers=alice.user.headers)

    assert response.status_code == 200, response.text
    document = json.loads(response.content)
    # THEN her keys are listed with what GET /user/api-keys shows, never the key itself or its hash
    listed = {key["name"]: key for key in document["api_keys"]}
    assert set(listed) == {"laptop", "old script"}
    for name, key in listed.items():
        assert set(key) == {"id", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"}
        assert (key["id"], key["prefix"]) == (keys[name]["id"], keys[name]["prefix"])
        assert key["created_at"].endswith("Z")
        assert keys[name]["key"] not in response.text
    assert listed["laptop"]["revoked_at"] is None and listed["old script"]["revoked_at"].endswith("Z")
    assert "secret_hash" not in response.text
    # and the emails sent (or being sent) to her, without the provider's message id
    sent = {(n["kind"], n["occasion"]): n for n in document["sent_notifications"]}
    receipt = sent[("payment_received", "pay_ExportReceipt01")]
    assert set(receipt) == {"kind", "occasion", "status", "claimed_at", "sent_at"}
    assert receipt["status"] == "sent" and receipt["sent_at"].endswith("Z")
    warning = sent[("quota_warning", "small_messages:2026-11-23:80")]
    assert (warning["status"], warning["sent_at"]) == ("sending", None)
    assert {kind for kind, _ in sent} <= {"payment_received", "quota_warning", "welcome"}
    assert "ses-id-01" not in response.text
    # nothing of bob's
    assert keys["bob's key"]["prefix"] not in response.text and "pay_BobReceipt0001" not in response.text
