"""The admin's workspaces over HTTP against the local server (`make dev`), and erasure with workspaces
through both erasure routes (issue 23): the list finds workspaces by name, slug, id, owner and state with
their owner and member count; suspend and unsuspend set the workspace's flag, answer 409 for no change and
404 for no workspace, and are in the audit log; `DELETE /user` and `DELETE /admin/users/{id}` take the
memberships and the workspaces the user alone owns, and hand shared ones over; the export lists the
caller's workspaces and memberships."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from oneai.db.connection import Database
from tests.conftest import AppUser, create_user
from tests.e2e.test_admin_http import audit_of, error_of
from tests.integration.test_workspaces_rls import INVITE, invite_params, state_of, team

pytestmark = pytest.mark.e2e


def make_team(db: Database, owner: AppUser, members: dict[uuid.UUID, str] | None = None, name: str = "") -> str:
    """A workspace as the workspaces routes make one (they are another function's), with one pending
    invitation."""
    workspace = team(db, owner, members, name=name or f"Team {uuid.uuid4().hex[:8]}")
    with db.service_transaction() as conn:
        conn.execute(INVITE, invite_params(workspace, owner.id))
    return str(workspace)


def slug_of(db: Database, workspace_id: str) -> str:
    with db.service_transaction() as conn:
        row = conn.execute("select slug from public.workspaces where id = %s", (workspace_id,)).fetchone()
    assert row is not None
    return str(row["slug"])


def workspace_state(db: Database, workspace_id: str) -> dict[str, Any] | None:
    """The workspace's owner, suspension and members; None when it is gone with its members and invitations."""
    state = state_of(db, UUID(workspace_id))
    if state["workspace"] is None:
        assert (state["members"], state["invitations"]) == ({}, 0)
        return None
    with db.service_transaction() as conn:
        row = conn.execute(
            "select owner_id, suspended_at is not null as suspended from public.workspaces where id = %s",
            (workspace_id,),
        ).fetchone()
    assert row is not None
    return {**row, "members": state["members"]}


def listed(client: httpx.Client, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/admin/workspaces", params=params, headers=admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# --- the list -------------------------------------------------------------------------------------------


def test_the_admin_finds_workspaces_by_name_slug_id_owner_and_state_with_owner_and_members(
    client: httpx.Client, admin: dict[str, str], database_url: str, db: Database
) -> None:
    owner, member = create_user(database_url), create_user(database_url)
    marker = uuid.uuid4().hex[:8]
    acme = make_team(db, owner, {member.id: "editor"}, name=f"Acme {marker}")
    globex = make_team(db, owner, name=f"Globex {marker}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.workspaces set deleted_at = now() where id = %s", (globex,))

    # by part of the name: newest first
    items = listed(client, admin, q=marker)
    assert [i["id"] for i in items] == [globex, acme]
    first = items[1]
    assert first["owner"] == {"id": str(owner.id), "email": owner.principal.email, "name": None}
    assert first["stats"] == {
        "chatbots": 0,
        "documents": 0,
        "storage_bytes": 0,
        "messages_30d": 0,
        "credits_balance": "0.00",
        "members": 2,
    }
    assert (first["personal"], first["suspended_at"], first["deleted_at"], first["purge_after"]) == (
        False,
        None,
        None,
        None,
    )
    assert first["created_at"].endswith("Z")
    # a deleted one says when it will be purged
    assert items[0]["deleted_at"].endswith("Z") and items[0]["purge_after"] > items[0]["deleted_at"]
    # what the workspace holds counts as its members see it: a chatbot, a document, the last 30 days'
    # messages (the analytics rollups; one of 40 days ago is older), credits
    with psycopg.connect(database_url, autocommit=True) as conn:
        bot = conn.execute(
            "insert into public.chatbots (workspace_id, name, model) values (%s, 'Help', 'openai/gpt-4o-mini')"
            " returning id",
            (acme,),
        ).fetchone()
        assert bot is not None
        conn.execute(
            "insert into public.documents (workspace_id, filename, media_type, size_bytes, storage_key, status)"
            " values (%s, 'faq.txt', 'text/plain', 1234, %s, 'ready')",
            (acme, f"knowledge/{acme}/{uuid.uuid4()}/faq.txt"),
        )
        conn.execute(
            "insert into public.chatbot_daily_analytics (workspace_id, chatbot_id, day, messages) values"
            " (%(w)s, %(b)s, (now() at time zone 'UTC')::date - 1, 7), (%(w)s, %(b)s, (now() at time zone 'UTC')::date - 40, 5)",
            {"w": acme, "b": bot[0]},
        )
        conn.execute("select set_config('request.jwt.claim.role', 'service_role', false)")
        conn.execute("select oneai_private.grant_credits(%s, 250, 'test', null)", (acme,))
    assert listed(client, admin, q=acme)[0]["stats"] == {
        "chatbots": 1,
        "documents": 1,
        "storage_bytes": 1234,
        "messages_30d": 7,
        "credits_balance": "250.00",
        "members": 2,
    }
    # by slug, by id
    assert [i["id"] for i in listed(client, admin, q=slug_of(db, acme))] == [acme]
    assert [i["id"] for i in listed(client, admin, q=acme)] == [acme]
    # by owner: the owner's personal workspace and both teams, and nobody else's
    owned = listed(client, admin, owner_id=str(owner.id))
    assert [i["id"] for i in owned][:2] == [globex, acme] and len(owned) == 3
    assert owned[2]["personal"] is True and owned[2]["stats"]["members"] == 1
    # by state
    assert [i["id"] for i in listed(client, admin, q=marker, status="deleted")] == [globex]
    assert [i["id"] for i in listed(client, admin, q=marker, status="active")] == [acme]
    assert listed(client, admin, q=marker, status="suspended") == []
    # a search that is no LIKE pattern finds nothing
    assert listed(client, admin, q="%") == []


def test_the_workspace_list_pages_with_a_cursor_and_refuses_a_bad_one(
    client: httpx.Client, admin: dict[str, str], database_url: str, db: Database
) -> None:
    owner = create_user(database_url)
    made = [make_team(db, owner) for _ in range(3)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"owner_id": str(owner.id), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/admin/workspaces", params=params, headers=admin).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and set(made) < set(seen) and len(set(seen)) == 4
    error_of(
        client.get("/admin/workspaces", params={"cursor": "not-ours"}, headers=admin), 422, "VALIDATION_ERROR"
    )
    error_of(client.get("/admin/workspaces", params={"status": "gone"}, headers=admin), 422, "VALIDATION_ERROR")
    error_of(client.get("/admin/workspaces", params={"limit": 101}, headers=admin), 422, "VALIDATION_ERROR")


# --- suspension -----------------------------------------------------------------------------------------


def test_suspend_and_unsuspend_set_the_workspace_flag_once_each_and_are_audited(
    client: httpx.Client, admin: dict[str, str], database_url: str, db: Database
) -> None:
    owner = create_user(database_url)
    workspace = make_team(db, owner)

    response = client.post(
        f"/admin/workspaces/{workspace}/suspend", json={"reason": "phishing chatbot"}, headers=admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == workspace and response.json()["suspended_at"].endswith("Z")
    # the flag is on the workspace row (what the chatbots and widget read) and in the admin's list
    assert workspace_state(db, workspace) == {
        "owner_id": owner.id,
        "suspended": True,
        "members": {owner.id: "owner"},
    }
    assert [i["id"] for i in listed(client, admin, q=workspace, status="suspended")] == [workspace]
    # its members still see their workspace, and that it is suspended
    with db.user_transaction(owner.principal) as conn:
        seen = conn.execute(
            "select suspended_at is not null as suspended from public.workspaces where id = %s", (workspace,)
        )
        assert seen.fetchall() == [{"suspended": True}]
    # suspending again changes nothing: 409, no entry
    error_of(
        client.post(f"/admin/workspaces/{workspace}/suspend", json={"reason": "again"}, headers=admin),
        409,
        "CONFLICT",
    )
    # lifted
    lifted = client.post(f"/admin/workspaces/{workspace}/unsuspend", headers=admin)
    assert lifted.status_code == 200 and lifted.json()["suspended_at"] is None
    assert workspace_state(db, workspace)["suspended"] is False  # type: ignore[index]
    error_of(client.post(f"/admin/workspaces/{workspace}/unsuspend", headers=admin), 409, "CONFLICT")
    # the audit log has exactly the two changes, with the reason of the suspension
    entries = [e for e in audit_of(client, admin, workspace) if e["target_type"] == "workspace"]
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("workspace.suspend", "phishing chatbot"),
        ("workspace.unsuspend", None),
    ]
    assert entries[0]["before"] == {"suspended_at": None} and entries[0]["after"]["suspended_at"].endswith("Z")
    assert entries[1]["after"] == {"suspended_at": None}
    filtered = client.get("/admin/audit-log", params={"target_type": "workspace", "limit": 100}, headers=admin)
    assert {e["target_id"] for e in filtered.json()["items"]} >= {workspace}


def test_suspending_no_workspace_is_404_and_a_reason_is_required(
    client: httpx.Client, admin: dict[str, str], database_url: str, db: Database
) -> None:
    for path in (f"/admin/workspaces/{uuid.uuid4()}", "/admin/workspaces/not-a-uuid"):
        error_of(client.post(f"{path}/suspend", json={"reason": "x"}, headers=admin), 404, "NOT_FOUND")
        error_of(client.post(f"{path}/unsuspend", headers=admin), 404, "NOT_FOUND")
    workspace = make_team(db, create_user(database_url))
    for body in ({}, {"reason": "  "}, {"reason": "x", "extra": 1}):
        error_of(
            client.post(f"/admin/workspaces/{workspace}/suspend", json=body, headers=admin),
            422,
            "VALIDATION_ERROR",
        )
    assert workspace_state(db, workspace)["suspended"] is False  # type: ignore[index]
    assert audit_of(client, admin, workspace) == []


# --- erasure and export ----------------------------------------------------------------------------------


def workspaces_of_leaver(database_url: str, db: Database) -> tuple[AppUser, AppUser, AppUser, dict[str, str]]:
    """A user who alone owns one workspace, shares another with a second owner and is a member of a third."""
    leaving, partner, host = (create_user(database_url) for _ in range(3))
    teams = {
        "alone": make_team(db, leaving, {host.id: "editor"}),
        "shared": make_team(db, leaving, {partner.id: "owner", host.id: "viewer"}),
        "hosted": make_team(db, host, {leaving.id: "admin"}),
    }
    return leaving, partner, host, teams


def assert_erased_with_workspaces(
    db: Database, leaving: AppUser, partner: AppUser, host: AppUser, teams: dict[str, str]
) -> None:
    assert workspace_state(db, teams["alone"]) is None
    assert workspace_state(db, teams["shared"]) == {
        "owner_id": partner.id,
        "suspended": False,
        "members": {partner.id: "owner", host.id: "viewer"},
    }
    assert workspace_state(db, teams["hosted"])["members"] == {host.id: "owner"}  # type: ignore[index]
    with db.service_transaction() as conn:
        left = conn.execute(
            "select (select count(*) from public.workspace_members where user_id = %(id)s) as memberships,"
            " (select count(*) from public.workspaces where owner_id = %(id)s) as owned",
            {"id": leaving.id},
        ).fetchone()
    assert left == {"memberships": 0, "owned": 0}


def test_delete_user_takes_the_memberships_and_the_workspaces_the_user_alone_owns(
    client: httpx.Client, database_url: str, db: Database
) -> None:
    leaving, partner, host, teams = workspaces_of_leaver(database_url, db)

    assert client.delete("/user", headers=leaving.headers).status_code == 204

    assert_erased_with_workspaces(db, leaving, partner, host, teams)


def test_the_admins_erasure_does_the_same_with_workspaces(
    client: httpx.Client, admin: dict[str, str], database_url: str, db: Database
) -> None:
    leaving, partner, host, teams = workspaces_of_leaver(database_url, db)

    assert client.delete(f"/admin/users/{leaving.id}", headers=admin).status_code == 204

    assert_erased_with_workspaces(db, leaving, partner, host, teams)
    assert teams["shared"] in {i["id"] for i in listed(client, admin, owner_id=str(partner.id))}


def test_the_export_lists_the_callers_workspaces_and_memberships(
    client: httpx.Client, database_url: str, db: Database
) -> None:
    alice, bob = create_user(database_url), create_user(database_url)
    acme = make_team(db, bob, {alice.id: "viewer"})

    document = client.get("/user/export", headers=alice.headers).json()

    roles = {m["workspace_id"]: m["role"] for m in document["workspace_memberships"]}
    assert roles[acme] == "viewer" and sorted(roles.values()) == ["owner", "viewer"]
    assert {w["id"]: w["owned"] for w in document["workspaces"]}[acme] is False
    assert str(bob.id) not in str(document)
