"""Workspaces over HTTP through the local server (what `make dev` runs): the whole flow of API.md
"Workspaces and teams" (create, invite a second user by email, accept from the email's link, change the
role, remove, delete and restore), a stranger's 404s, a viewer's 403s, refused invitation tokens, the last
owner's 409, and two owners demoting each other with real concurrent requests."""

from __future__ import annotations

import re
import threading
import uuid
from uuid import UUID

import httpx
import psycopg
import pytest

from oneai.auth import authenticate
from tests.conftest import AppUser, create_user, token_for
from tests.e2e.conftest import LocalServer
from tests.e2e.test_notifications_http import emails_to, text_of, wait_for

pytestmark = pytest.mark.e2e

ACCEPT_LINK = re.compile(r"https?://\S+/invitations/([A-Za-z0-9_-]+)")


def user(database_url: str, *, tier: str = "free", verified: bool = True) -> AppUser:
    """A Supabase user whose token says whether the email is confirmed (user_metadata.email_verified)."""
    made = create_user(database_url)
    if tier != "free":
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("update public.users set subscription_tier = %s where id = %s", (tier, made.id))
    token = token_for(made.id, made.principal.email, extra_claims={"user_metadata": {"email_verified": verified}})
    return AppUser(principal=authenticate(f"Bearer {token}"), token=token)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def accept_token_sent_to(address: str) -> str:
    emails = wait_for(lambda: [e for e in emails_to(address) if "invited you" in str(e["Subject"])])
    assert len(emails) == 1, f"no invitation email to {address}"
    assert emails[0]["List-Unsubscribe"] is None  # not an account email: nothing to unsubscribe from
    found = ACCEPT_LINK.search(text_of(emails[0]))
    assert found is not None
    return found.group(1)


def test_the_whole_flow_create_invite_accept_change_role_remove_delete_restore(
    client: httpx.Client, database_url: str
) -> None:
    owner, invitee, stranger = user(database_url, tier="pro"), user(database_url), user(database_url)
    name = f"Acme Support {uuid.uuid4().hex[:6]}"
    created = client.post("/workspaces", json={"name": name, "industry": "retail"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    workspace = created.json()
    assert (workspace["name"], workspace["role"], workspace["stats"]["members"]) == (name, "owner", 1)
    assert workspace["slug"].startswith("acme-support-") and workspace["stats"]["credits_balance"] == "0.00"
    base = f"/workspaces/{workspace['id']}"
    assert client.post("/workspaces", json={"name": name}, headers=owner.headers).status_code == 409

    # a stranger: 404 for everything, as for an id that does not exist
    for method, path in (
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("GET", f"{base}/members"),
        ("GET", f"{base}/invitations"),
        ("POST", f"{base}/invitations"),
        ("GET", f"/workspaces/{uuid.uuid4()}"),
        ("GET", "/workspaces/not-a-uuid"),
    ):
        body = {"name": "x"} if method == "PATCH" else {"email": "a@b.test"} if method == "POST" else None
        response = client.request(method, path, json=body, headers=stranger.headers)
        assert (response.status_code, error_code(response)) == (404, "NOT_FOUND"), (method, path)

    # invite the second user: 201, and an email with the accept link
    email = invitee.principal.email
    assert email is not None
    invited = client.post(f"{base}/invitations", json={"email": email, "role": "viewer"}, headers=owner.headers)
    assert invited.status_code == 201, invited.text
    assert client.get(f"{base}/invitations", headers=owner.headers).json()["items"][0]["email"] == email
    token = accept_token_sent_to(email)
    # the link is refused to another user, and to the invitee before their email is confirmed
    assert client.post(f"/invitations/{token}/accept", headers=stranger.headers).status_code == 404
    unverified = token_for(invitee.id, email, extra_claims={"user_metadata": {"email_verified": False}})
    refused = client.post(f"/invitations/{token}/accept", headers={"authorization": f"Bearer {unverified}"})
    assert (refused.status_code, error_code(refused)) == (403, "FORBIDDEN")
    accepted = client.post(f"/invitations/{token}/accept", headers=invitee.headers)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["id"], accepted.json()["role"]) == (workspace["id"], "viewer")
    assert client.post(f"/invitations/{token}/accept", headers=invitee.headers).status_code == 404  # used once

    # the viewer reads, and every write is 403
    assert client.get(base, headers=invitee.headers).json()["role"] == "viewer"
    for method, path, body in (
        ("PATCH", base, {"name": "Taken over"}),
        ("DELETE", base, None),
        ("POST", f"{base}/invitations", {"email": "friend@example.test", "role": "admin"}),
        ("PATCH", f"{base}/members/{owner.id}", {"role": "viewer"}),
        ("DELETE", f"{base}/members/{owner.id}", None),
    ):
        response = client.request(method, path, json=body, headers=invitee.headers)
        assert (response.status_code, error_code(response)) == (403, "FORBIDDEN"), (method, path)

    # change the role; the last owner can neither be demoted nor leave
    changed = client.patch(f"{base}/members/{invitee.id}", json={"role": "editor"}, headers=owner.headers)
    assert (changed.status_code, changed.json()["role"]) == (200, "editor")
    for response in (
        client.patch(f"{base}/members/{owner.id}", json={"role": "admin"}, headers=owner.headers),
        client.delete(f"{base}/members/{owner.id}", headers=owner.headers),
    ):
        assert (response.status_code, error_code(response)) == (409, "CONFLICT")
    members = client.get(f"{base}/members", headers=owner.headers).json()["items"]
    assert {(m["user_id"], m["role"], m["email"]) for m in members} == {
        (str(owner.id), "owner", owner.principal.email),
        (str(invitee.id), "editor", email),
    }

    # remove the member: the workspace is gone for them
    assert client.delete(f"{base}/members/{invitee.id}", headers=owner.headers).status_code == 204
    assert client.get(base, headers=invitee.headers).status_code == 404

    # delete (204), gone (404, not listed), restore, back
    assert client.delete(base, headers=owner.headers).status_code == 204
    assert client.get(base, headers=owner.headers).status_code == 404
    listed = client.get("/workspaces", headers=owner.headers).json()["items"]
    assert workspace["id"] not in [w["id"] for w in listed]
    restored = client.post(f"{base}/restore", headers=owner.headers)
    assert (restored.status_code, restored.json()["id"]) == (200, workspace["id"])
    detail = client.get(base, headers=owner.headers).json()
    assert (detail["tier"], detail["limits"]["members"], detail["usage"]["workspaces_owned"]) == ("pro", 10, 2)


def test_limits_personal_workspace_and_expired_invitations(client: httpx.Client, database_url: str) -> None:
    free, invitee = user(database_url), user(database_url)
    refused = client.post("/workspaces", json={"name": "Another"}, headers=free.headers)
    assert refused.status_code == 402
    assert refused.json()["error"] == {
        "code": "PLAN_LIMIT",
        "message": refused.json()["error"]["message"],
        "details": {"limit": 1, "used": 1, "tier": "free"},
    }
    personal = client.get("/workspaces", headers=free.headers).json()["items"]
    assert [(w["personal"], w["role"]) for w in personal] == [(True, "owner")]
    base = f"/workspaces/{personal[0]['id']}"
    not_deleted = client.delete(base, headers=free.headers)
    assert (not_deleted.status_code, error_code(not_deleted)) == (409, "CONFLICT")
    # an invitation past its 7 days is refused
    assert invitee.principal.email is not None
    invited = client.post(f"{base}/invitations", json={"email": invitee.principal.email}, headers=free.headers)
    assert invited.status_code == 201
    token = accept_token_sent_to(invitee.principal.email)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.workspace_invitations set created_at = now() - interval '8 days',"
            " expires_at = now() - interval '1 day' where id = %s",
            (invited.json()["id"],),
        )
    assert client.post(f"/invitations/{token}/accept", headers=invitee.headers).status_code == 404


def demote_each_other_at_once(base_url: str, workspace_id: UUID, first: AppUser, second: AppUser) -> list[int]:
    """Two real concurrent requests, released together: each owner demotes the other."""
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def demote(actor: AppUser, target: AppUser) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            barrier.wait()
            response = http.patch(
                f"/workspaces/{workspace_id}/members/{target.id}", json={"role": "viewer"}, headers=actor.headers
            )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=demote, args=pair) for pair in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(statuses)


def test_two_owners_demoting_each_other_at_once_over_http_leave_one_owner(
    local_server: LocalServer, client: httpx.Client, database_url: str
) -> None:
    for _ in range(3):
        first, second = user(database_url, tier="pro"), user(database_url, tier="pro")
        created = client.post("/workspaces", json={"name": f"Duel {uuid.uuid4().hex[:6]}"}, headers=first.headers)
        workspace_id = UUID(created.json()["id"])
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'owner')",
                (workspace_id, second.id),
            )
        statuses = demote_each_other_at_once(local_server.base_url, workspace_id, first, second)
        # one demotion wins; the other is refused (409: it would leave no owner; 403: its caller was demoted)
        assert statuses[0] == 200 and statuses[1] in (403, 409), statuses
        with psycopg.connect(database_url, autocommit=True) as conn:
            owners = conn.execute(
                "select count(*) from public.workspace_members where workspace_id = %s and role = 'owner'",
                (workspace_id,),
            ).fetchone()
        assert owners == (1,)
