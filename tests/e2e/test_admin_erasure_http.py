"""`DELETE /admin/users/{id}` over HTTP through the local server: an admin erases a user's account the way
`DELETE /user` does (Razorpay's subscription cancelled first, then every row), with one audit entry of ids
and counts written in the erasure's own last transaction; 404 for an unknown user, 409 for themselves, and
when Razorpay fails, 502 with nothing erased and no entry."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from local.fake_razorpay import FakeRazorpay, Status
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import E2E_RAZORPAY_KEY_SECRET
from tests.e2e.test_account_erasure_http import make_account, rows_of, usage_owners
from tests.e2e.test_admin_http import audit_of

pytestmark = pytest.mark.e2e


def erase_entries(client: httpx.Client, admin: dict[str, str], user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [e for e in audit_of(client, admin, str(user_id)) if e["action"] == "user.erase"]


def test_an_admin_erases_a_paying_user_like_delete_user_and_the_audit_log_says_so_with_counts_only(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str, admin_user: AppUser, admin: dict[str, str]
) -> None:
    alice = make_account(client, razorpay, database_url)
    bob = make_account(client, razorpay, database_url)
    key = client.post("/user/api-keys", json={"name": "alice's script"}, headers=alice.user.headers)
    assert key.status_code == 201, key.text
    bob_before = rows_of(database_url, bob.user.id)

    response = client.delete(f"/admin/users/{alice.user.id}", headers=admin)

    assert response.status_code == 204, response.text
    # Razorpay's subscription was cancelled now, then no row of alice is left; her usage is kept without her
    assert razorpay.subscription(alice.subscription_id)["status"] == "cancelled"
    (cancel,) = razorpay.requests_to("POST", f"/{alice.subscription_id}/cancel")
    assert cancel.body == {"cancel_at_cycle_end": 0}
    assert set(rows_of(database_url, alice.user.id).values()) == {0}
    assert usage_owners(database_url, alice.usage_ids) == [None, None]
    # her token and her API key stop working, her share link shows nothing
    assert client.get("/user/profile", headers=alice.user.headers).status_code in (401, 403)
    assert client.get("/v1/models", headers={"authorization": f"Bearer {key.json()['key']}"}).status_code == 401
    assert client.get(f"/shared/{alice.share_token}").status_code == 404
    assert client.get(f"/admin/users/{alice.user.id}", headers=admin).status_code == 404
    # the audit log has one entry: who erased whom, and how much, with nothing personal in it
    (entry,) = erase_entries(client, admin, alice.user.id)
    assert (entry["actor_id"], entry["target_type"], entry["target_id"]) == (
        str(admin_user.id),
        "user",
        str(alice.user.id),
    )
    assert entry["before"] == {
        "conversations": 1,
        "messages": 2,
        "share_links": 1,
        "api_keys": 1,
        "subscriptions": 1,
    }
    assert entry["after"] == {"erased": True, "subscriptions_cancelled": 1}
    text = json.dumps(entry)
    assert alice.user.principal.email not in text and "Goa" not in text
    # bob is untouched
    assert rows_of(database_url, bob.user.id) == bob_before
    assert razorpay.subscription(bob.subscription_id)["status"] == "active"
    # erasing again: the user is gone, 404, and no second entry
    again = client.delete(f"/admin/users/{alice.user.id}", headers=admin)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"
    assert len(erase_entries(client, admin, alice.user.id)) == 1


def test_an_admin_gets_404_for_an_unknown_user_and_409_for_themselves(
    client: httpx.Client, admin_user: AppUser, admin: dict[str, str], database_url: str
) -> None:
    unknown = uuid.uuid4()
    response = client.delete(f"/admin/users/{unknown}", headers=admin)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    # an id that is no uuid names nobody either
    assert client.delete("/admin/users/not-a-uuid", headers=admin).status_code == 404

    myself = client.delete(f"/admin/users/{admin_user.id}", headers=admin)

    assert myself.status_code == 409, myself.text
    assert myself.json()["error"]["code"] == "CONFLICT"
    assert rows_of(database_url, admin_user.id)["auth.users"] == 1
    assert client.get(f"/admin/users/{admin_user.id}", headers=admin).status_code == 200
    assert erase_entries(client, admin, admin_user.id) == []


def test_a_user_who_is_not_an_admin_cannot_erase_anyone(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str
) -> None:
    alice = make_account(client, razorpay, database_url, paying=False)
    mallory = create_user(database_url)
    before = rows_of(database_url, alice.user.id)

    response = client.delete(f"/admin/users/{alice.user.id}", headers=mallory.headers)

    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"
    assert rows_of(database_url, alice.user.id) == before


def test_when_razorpay_fails_an_admin_erasure_is_502_erases_nothing_and_leaves_no_entry(
    client: httpx.Client, razorpay: FakeRazorpay, database_url: str, admin: dict[str, str]
) -> None:
    alice = make_account(client, razorpay, database_url)
    before = rows_of(database_url, alice.user.id)
    razorpay.script(Status(502), method="POST")

    response = client.delete(f"/admin/users/{alice.user.id}", headers=admin)

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "UPSTREAM_ERROR" and "nothing was erased" in error["message"]
    assert E2E_RAZORPAY_KEY_SECRET not in response.text
    assert rows_of(database_url, alice.user.id) == before
    assert razorpay.subscription(alice.subscription_id)["status"] == "active"
    assert client.get("/user/profile", headers=alice.user.headers).status_code == 200
    assert erase_entries(client, admin, alice.user.id) == []
    # the fault was one answer: the same call again finishes the job, with its one entry
    assert client.delete(f"/admin/users/{alice.user.id}", headers=admin).status_code == 204
    assert set(rows_of(database_url, alice.user.id).values()) == {0}
    (entry,) = erase_entries(client, admin, alice.user.id)
    assert entry["after"] == {"erased": True, "subscriptions_cancelled": 1}
