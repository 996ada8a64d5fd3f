"""The admin API over HTTP against the local server (`make dev`): admins only; suspensions stop the
user's next request on every function; quota overrides show in `/user/quota` and bind the quota check
until they expire; a subscription sync applies what Razorpay says; every write is in the audit log."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply
from local.fake_razorpay import FakeRazorpay, Status
from local.template_routes import list_routes, load_template
from oneai.quota.tiers import TIERS
from tests.conftest import AppUser, create_user, token_for
from tests.e2e.conftest import CHAT_MODEL, E2E_RAZORPAY_KEY_SECRET

FREE_LARGE = TIERS["free"].quotas["large_messages"].limit


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return dict(body["error"])


def audit_of(client: httpx.Client, admin: dict[str, str], target_id: str) -> list[dict[str, Any]]:
    response = client.get("/admin/audit-log", params={"target_id": target_id, "limit": 100}, headers=admin)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))  # oldest first


def admin_routes() -> list[tuple[str, str]]:
    """Every admin route of the template with sample path values, except the public OpenAPI document."""
    routes = []
    for route in list_routes(load_template()):
        if route.function_id != "AdminFunction" or route.path.endswith("/openapi.json"):
            continue
        path = route.path.replace("{id}", str(uuid.uuid4())).replace("{quota_key}", "large_messages")
        routes.append((route.method, path))
    return routes


def test_the_template_routes_all_admin_routes_of_api_md() -> None:
    assert sorted(admin_routes_by_template()) == sorted(
        [
            ("GET", "/admin/users"),
            ("GET", "/admin/users/{id}"),
            ("DELETE", "/admin/users/{id}"),
            ("POST", "/admin/users/{id}/suspend"),
            ("POST", "/admin/users/{id}/unsuspend"),
            ("PUT", "/admin/users/{id}/quotas/{quota_key}"),
            ("DELETE", "/admin/users/{id}/quotas/{quota_key}"),
            ("GET", "/admin/subscriptions"),
            ("POST", "/admin/subscriptions/{id}/sync"),
            ("GET", "/admin/workspaces"),
            ("POST", "/admin/workspaces/{id}/suspend"),
            ("POST", "/admin/workspaces/{id}/unsuspend"),
            ("POST", "/admin/workspaces/{id}/credits/grant"),
            ("POST", "/admin/workspaces/{id}/credits/adjust"),
            ("GET", "/admin/analytics"),
            ("GET", "/admin/audit-log"),
            ("GET", "/admin/docs/feedback"),
            ("GET", "/admin/openapi.json"),
        ]
    )


def admin_routes_by_template() -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in list_routes(load_template()) if r.function_id == "AdminFunction"]


@pytest.mark.parametrize(("method", "path"), admin_routes())
def test_a_non_admin_gets_403_and_no_token_401_on_every_admin_route(
    client: httpx.Client, alice: AppUser, database_url: str, method: str, path: str
) -> None:
    body = {"reason": "x", "limit": 1} if method in {"POST", "PUT"} else None
    # a user whose user_metadata (which users may edit themselves) claims the role is no admin either
    forged = token_for(alice.id, alice.principal.email, extra_claims={"user_metadata": {"role": "admin"}})
    for headers in (alice.headers, {"authorization": f"Bearer {forged}"}):
        error_of(client.request(method, path, json=body, headers=headers), 403, "FORBIDDEN")
    error_of(client.request(method, path, json=body), 401, "UNAUTHORIZED")


def test_the_admin_openapi_document_is_served(client: httpx.Client) -> None:
    response = client.get("/admin/openapi.json")
    assert response.status_code == 200
    assert "/admin/users/{user_id}/quotas/{quota_key}" in response.json()["paths"]


def test_suspend_stops_the_next_call_on_every_function_and_unsuspend_restores_it(
    client: httpx.Client, admin: dict[str, str], alice: AppUser
) -> None:
    assert client.get("/user/quota", headers=alice.headers).status_code == 200
    # WHEN an admin suspends alice
    response = client.post(f"/admin/users/{alice.id}/suspend", json={"reason": "card testing"}, headers=admin)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["suspension_reason"] == "card testing" and detail["suspended_at"].endswith("Z")
    # THEN her very next request is 403 on every function
    for method, path in [("GET", "/user/quota"), ("GET", "/conversations"), ("GET", "/subscription")]:
        error_of(client.request(method, path, headers=alice.headers), 403, "FORBIDDEN")
    error_of(
        client.post("/chat/stream", json={"model": "openai/gpt-4o-mini", "content": "hi"}, headers=alice.headers),
        403,
        "FORBIDDEN",
    )
    # AND the admin list shows it
    listed = client.get("/admin/users", params={"q": str(alice.id)}, headers=admin).json()["items"]
    assert [u["suspended_at"] is not None for u in listed] == [True]
    # WHEN she is unsuspended THEN she is back
    assert client.post(f"/admin/users/{alice.id}/unsuspend", headers=admin).status_code == 200
    assert client.get("/user/quota", headers=alice.headers).status_code == 200
    assert client.get("/conversations", headers=alice.headers).status_code == 200
    # AND both writes are in the audit log
    entries = audit_of(client, admin, str(alice.id))
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("user.suspend", "card testing"),
        ("user.unsuspend", None),
    ]
    assert all(e["at"].endswith("Z") and e["target_type"] == "user" for e in entries)
    # AND a second unsuspend is a conflict that writes nothing
    error_of(client.post(f"/admin/users/{alice.id}/unsuspend", headers=admin), 409, "CONFLICT")
    assert len(audit_of(client, admin, str(alice.id))) == 2


def quota_of(client: httpx.Client, user: AppUser, key: str) -> dict[str, Any]:
    response = client.get("/user/quota", headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["quotas"][key])


def test_an_override_shows_in_user_quota_binds_the_check_and_ends_on_expiry_or_removal(
    client: httpx.Client, admin: dict[str, str], alice: AppUser
) -> None:
    assert quota_of(client, alice, "large_messages")["limit"] == FREE_LARGE
    # WHEN an admin raises alice's large-message limit for two seconds
    expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    response = client.put(
        f"/admin/users/{alice.id}/quotas/large_messages",
        json={"limit": FREE_LARGE + 30, "reason": "outage credit", "expires_at": expires},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["limit"] == FREE_LARGE + 30 and response.json()["tier_limit"] == FREE_LARGE
    # THEN /user/quota shows it at once, and the quota check admits up to it and not beyond
    assert quota_of(client, alice, "large_messages")["limit"] == FREE_LARGE + 30
    check = {"quota_key": "large_messages", "units": FREE_LARGE + 30}
    assert client.post("/user/quota/check", json=check, headers=alice.headers).status_code == 200
    over = client.post("/user/quota/check", json={**check, "units": FREE_LARGE + 31}, headers=alice.headers)
    assert error_of(over, 429, "QUOTA_EXCEEDED")["details"]["limit"] == FREE_LARGE + 30
    # AND the admin's view of her shows the override
    quotas = {q["quota_key"]: q for q in client.get(f"/admin/users/{alice.id}", headers=admin).json()["quotas"]}
    assert quotas["large_messages"]["override"]["reason"] == "outage credit"
    # WHEN it expires THEN the tier's limit is back, by itself
    time.sleep(2.2)
    assert quota_of(client, alice, "large_messages")["limit"] == FREE_LARGE
    # WHEN set again and removed THEN the tier's limit is back too
    put = client.put(
        f"/admin/users/{alice.id}/quotas/large_messages", json={"limit": 3, "reason": "abuse"}, headers=admin
    )
    assert put.status_code == 200
    assert quota_of(client, alice, "large_messages")["limit"] == 3
    assert client.delete(f"/admin/users/{alice.id}/quotas/large_messages", headers=admin).status_code == 204
    assert quota_of(client, alice, "large_messages")["limit"] == FREE_LARGE
    # AND each write is in the audit log
    entries = audit_of(client, admin, str(alice.id))
    assert [e["action"] for e in entries] == ["quota_override.set", "quota_override.set", "quota_override.remove"]
    assert entries[0]["after"]["expires_at"] is not None and entries[2]["before"]["limit"] == 3


def test_bad_override_input_is_422_and_unknown_things_404(
    client: httpx.Client, admin: dict[str, str], alice: AppUser
) -> None:
    path = f"/admin/users/{alice.id}/quotas/large_messages"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in (
        {"limit": -1, "reason": "x"},
        {"limit": 5, "reason": ""},
        {"limit": 5, "reason": "x", "expires_at": past},
        {"limit": 5, "reason": "x", "expires_at": "2099-01-01T00:00:00"},  # no time zone
        {"limit": 5, "reason": "nul \u0000 inside"},
        {"limit": 5},
    ):
        error_of(client.put(path, json=body, headers=admin), 422, "VALIDATION_ERROR")
    error_of(
        client.put(f"/admin/users/{alice.id}/quotas/gold_bars", json={"limit": 1, "reason": "x"}, headers=admin),
        404,
        "NOT_FOUND",
    )
    error_of(
        client.put(
            f"/admin/users/{uuid.uuid4()}/quotas/large_messages", json={"limit": 1, "reason": "x"}, headers=admin
        ),
        404,
        "NOT_FOUND",
    )
    error_of(client.get("/admin/users/not-a-uuid", headers=admin), 404, "NOT_FOUND")
    error_of(client.delete(path, headers=admin), 404, "NOT_FOUND")
    error_of(
        client.get("/admin/analytics", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=admin),
        422,
        "VALIDATION_ERROR",
    )
    error_of(client.get("/admin/users", params={"cursor": "bogus"}, headers=admin), 422, "VALIDATION_ERROR")
    assert audit_of(client, admin, str(alice.id)) == []


def test_sync_applies_what_razorpay_says_through_the_webhook_rules(
    client: httpx.Client, admin: dict[str, str], alice: AppUser, razorpay: FakeRazorpay
) -> None:
    # GIVEN alice checked out Pro, but the activation webhook never arrived
    created = client.post("/subscription/create", json={"tier": "pro"}, headers=alice.headers)
    assert created.status_code == 200, created.text
    provider_id = created.json()["subscription_id"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    end = start + timedelta(days=30)
    razorpay.update_subscription(
        provider_id, status="active", current_start=int(start.timestamp()), current_end=int(end.timestamp())
    )
    listed = client.get("/admin/subscriptions", params={"status": "created", "limit": 100}, headers=admin).json()
    ours = next(s for s in listed["items"] if s["provider_subscription_id"] == provider_id)
    assert quota_of(client, alice, "large_messages")["limit"] == FREE_LARGE
    # WHEN an admin syncs it
    response = client.post(f"/admin/subscriptions/{ours['id']}/sync", headers=admin)
    assert response.status_code == 200, response.text
    synced = response.json()
    # THEN it is active, paid through the period, and alice has Pro with its quotas
    assert synced["subscription"]["status"] == "active" and synced["user_tier"] == "pro" and synced["tier_changed"]
    assert synced["subscription"]["paid_until"] == end.isoformat().replace("+00:00", "Z")
    assert client.get("/user/quota", headers=alice.headers).json()["subscription"]["tier"] == "pro"
    assert quota_of(client, alice, "large_messages")["limit"] == TIERS["pro"].quotas["large_messages"].limit
    # AND the sync is audited with the state before and after
    entry = audit_of(client, admin, ours["id"])[-1]
    assert entry["action"] == "subscription.sync" and entry["target_type"] == "subscription"
    assert (entry["before"]["status"], entry["before"]["user_tier"]) == ("created", "free")
    assert (entry["after"]["status"], entry["after"]["user_tier"]) == ("active", "pro")
    # AND a sync again changes nothing more
    again = client.post(f"/admin/subscriptions/{ours['id']}/sync", headers=admin).json()
    assert again["tier_changed"] is False and again["user_tier"] == "pro"


def test_a_failing_razorpay_sync_is_502_and_writes_nothing(
    client: httpx.Client, admin: dict[str, str], alice: AppUser, razorpay: FakeRazorpay
) -> None:
    created = client.post("/subscription/create", json={"tier": "pro"}, headers=alice.headers)
    provider_id = created.json()["subscription_id"]
    listed = client.get("/admin/subscriptions", params={"limit": 100}, headers=admin).json()
    ours = next(s for s in listed["items"] if s["provider_subscription_id"] == provider_id)
    razorpay.script(Status(503), method="GET")
    response = client.post(f"/admin/subscriptions/{ours['id']}/sync", headers=admin)
    error_of(response, 502, "UPSTREAM_ERROR")
    assert E2E_RAZORPAY_KEY_SECRET not in response.text
    assert audit_of(client, admin, ours["id"]) == []
    error_of(client.post(f"/admin/subscriptions/{uuid.uuid4()}/sync", headers=admin), 404, "NOT_FOUND")


def test_analytics_answer_in_the_documented_shape(client: httpx.Client, admin: dict[str, str]) -> None:
    today = datetime.now(UTC).date()
    response = client.get(
        "/admin/analytics", params={"from": str(today - timedelta(days=6)), "to": str(today)}, headers=admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "from",
        "to",
        "users",
        "messages_by_day",
        "cost_by_model",
        "revenue",
        "margin_by_tier",
        "forecast",
    }
    assert len(body["messages_by_day"]) == 7 and body["messages_by_day"][-1]["day"] == str(today)
    assert isinstance(body["revenue"]["mrr"], str) and isinstance(body["forecast"]["cost_next_30d"], str)
    assert set(body["users"]) == {"total", "new", "active"}


def test_a_chat_turn_reserves_against_the_override(
    client: httpx.Client, admin: dict[str, str], alice: AppUser, database_url: str, openrouter: FakeOpenRouter
) -> None:
    # GIVEN alice used all 100 small messages of the free tier: a chat turn is refused
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = 100 where user_id = %s and quota_key = 'small_messages'",
            (alice.id,),
        )
    turn = {"model": CHAT_MODEL, "content": "one more"}
    error_of(client.post("/chat/stream", json=turn, headers=alice.headers), 429, "QUOTA_EXCEEDED")
    # WHEN an admin grants one more
    put = client.put(
        f"/admin/users/{alice.id}/quotas/small_messages", json={"limit": 101, "reason": "support"}, headers=admin
    )
    assert put.status_code == 200, put.text
    # THEN one turn streams, reserved against the override, and the next is refused at the new limit
    openrouter.script(Reply(chunks=["granted"]), model=CHAT_MODEL)
    granted = client.post("/chat/stream", json=turn, headers=alice.headers)
    assert granted.status_code == 200, granted.text
    assert '"limit":101' in granted.text.replace(" ", "")
    refused = error_of(client.post("/chat/stream", json=turn, headers=alice.headers), 429, "QUOTA_EXCEEDED")
    assert (refused["details"]["used"], refused["details"]["limit"]) == (101, 101)
