"""The product's own work on workspaces, against the real database (issue 23): the sweep purges what was
deleted more than 30 days ago and nothing else; erasure (the real `erase_account` path of `DELETE /user`
and `DELETE /admin/users/{id}`) removes memberships and the workspaces the user alone owns, and hands
shared ones over; the export holds the caller's workspaces and memberships; and the policies ask the
membership helper once per statement, not once per row."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from oneai.account.data_export import account_export
from oneai.account.erasure import erase_account
from oneai.admin.workspace_purge import purge_deleted_workspaces
from oneai.billing.razorpay_client import RazorpayClient
from oneai.config import override_settings
from oneai.db.connection import Connection, Database
from tests.conftest import AppUser
from tests.integration.test_quota_reset_handler import FakeLambdaContext, sample_event
from tests.integration.test_workspaces_rls import INVITE, invite_params, personal_workspace, state_of, team


def no_razorpay() -> RazorpayClient:
    raise AssertionError("a user without a subscription needs no Razorpay call")


def delete_days_ago(db: Database, workspace_id: UUID, days: float) -> None:
    with db.service_transaction() as conn:
        conn.execute(
            "update public.workspaces set deleted_at = now() - %s where id = %s",
            (timedelta(days=days), workspace_id),
        )


def invite(db: Database, workspace_id: UUID, inviter: UUID) -> None:
    with db.service_transaction() as conn:
        conn.execute(INVITE, invite_params(workspace_id, inviter))


def existing(db: Database, ids: list[UUID]) -> set[UUID]:
    with db.service_transaction() as conn:
        rows = conn.execute("select id from public.workspaces where id = any(%s)", (ids,)).fetchall()
    return {r["id"] for r in rows}


def purge_everything_due(db: Database) -> None:
    """Start from nothing due (other tests of the run may have left old deleted workspaces)."""
    purge_deleted_workspaces(db)


# --- the purge -------------------------------------------------------------------------------------------


def test_the_sweep_purges_a_workspace_deleted_31_days_ago_with_everything_in_it_and_keeps_the_rest(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    purge_everything_due(db)
    owner, member = make_user(), make_user()
    old = team(db, owner, {member.id: "editor"}, name="Old")
    recent = team(db, owner, {member.id: "editor"}, name="Recent")
    live = team(db, owner, {member.id: "editor"}, name="Live")
    for workspace in (old, recent, live):
        invite(db, workspace, owner.id)
    delete_days_ago(db, old, 31)
    delete_days_ago(db, recent, 29)
    seen: list[tuple[UUID, int]] = []

    def files_step(conn: Connection, workspace_id: UUID) -> None:
        # the hook for what a workspace holds outside its rows: it runs while the rows still exist
        row = conn.execute(
            "select count(*) as n from public.workspace_members where workspace_id = %s", (workspace_id,)
        ).fetchone()
        assert row is not None
        seen.append((workspace_id, row["n"]))

    purged = purge_deleted_workspaces(db, steps=(files_step,))

    assert purged == 1
    assert seen == [(old, 2)]
    assert existing(db, [old, recent, live]) == {recent, live}
    # everything in it went with it; the others keep theirs
    assert state_of(db, old) == {"workspace": None, "members": {}, "invitations": 0}
    for kept in (recent, live):
        assert state_of(db, kept)["members"] == {owner.id: "owner", member.id: "editor"}
        assert state_of(db, kept)["invitations"] == 1
    # the people stay, with their personal workspaces
    assert personal_workspace(db, owner.id)["role"] == "owner"
    # AND a second run purges nothing more (idempotent)
    assert purge_deleted_workspaces(db, steps=(files_step,)) == 0
    assert len(seen) == 1


def test_the_purge_goes_in_batches_and_a_failing_step_purges_nothing_of_its_batch(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    purge_everything_due(db)
    owner = make_user()
    workspaces = [team(db, owner, name=f"Old {n}") for n in range(5)]
    for workspace in workspaces:
        delete_days_ago(db, workspace, 40)

    def storage_down(conn: Connection, workspace_id: UUID) -> None:
        raise RuntimeError("storage unavailable")

    with pytest.raises(RuntimeError, match="storage unavailable"):
        purge_deleted_workspaces(db, batch_size=2, steps=(storage_down,))
    assert existing(db, workspaces) == set(workspaces)
    # the next run, in batches of 2, purges all 5
    assert purge_deleted_workspaces(db, batch_size=2) == 5
    assert existing(db, workspaces) == set()


def test_a_restore_in_progress_is_never_purged_under_it(
    db: Database, settings_with_db: Any, make_user: Callable[..., AppUser]
) -> None:
    purge_everything_due(db)
    owner = make_user()
    workspace = team(db, owner, name="Restoring")
    delete_days_ago(db, workspace, 31)
    sweep = Database(settings_with_db)  # the sweep's own connection, as in its own Lambda
    try:
        # WHILE the owner's restore holds the row (not committed yet)
        with db.user_transaction(owner.principal) as conn:
            restored = conn.execute(
                "update public.workspaces set deleted_at = null where id = %s returning id", (workspace,)
            ).fetchall()
            assert len(restored) == 1
            # THEN the sweep skips it without waiting
            assert purge_deleted_workspaces(sweep) == 0
        # AND once restored it is live, and stays
        assert purge_deleted_workspaces(sweep) == 0
    finally:
        sweep.close()
    assert state_of(db, workspace)["workspace"] == ("Restoring", None)


def test_the_quota_reset_schedule_runs_the_purge(
    database_url: str, db: Database, make_user: Callable[..., AppUser]
) -> None:
    from pydantic import SecretStr
    from quota_reset.handler import lambda_handler

    purge_everything_due(db)
    owner = make_user()
    old, recent = team(db, owner, name="Old"), team(db, owner, name="Recent")
    delete_days_ago(db, old, 31)
    delete_days_ago(db, recent, 29)
    with override_settings(database_url=SecretStr(database_url)):
        result = lambda_handler(sample_event("daily"), FakeLambdaContext())
    assert result["workspaces_purged"] == 1
    assert existing(db, [old, recent]) == {recent}


# --- erasure, through the real path ------------------------------------------------------------------------


def test_erasing_an_account_removes_its_memberships_and_the_workspaces_it_alone_owns(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    leaving, partner, host = make_user(), make_user(), make_user()
    alone = team(db, leaving, {host.id: "editor"}, name="Alone")
    invite(db, alone, leaving.id)
    shared = team(db, leaving, {partner.id: "owner", host.id: "viewer"}, name="Shared")
    hosted = team(db, host, {leaving.id: "admin"}, name="Hosted")
    invite(db, hosted, leaving.id)  # an invitation the leaving admin sent goes with them
    invite(db, hosted, host.id)
    personal = personal_workspace(db, leaving.id)["id"]

    report = erase_account(db, leaving.id, razorpay=no_razorpay)

    assert report.erased
    # the workspace they alone owned (its members and invitations too) and their personal one are gone
    assert existing(db, [alone, shared, hosted, personal]) == {shared, hosted}
    assert state_of(db, alone) == {"workspace": None, "members": {}, "invitations": 0}
    # the shared one is the partner's, with its other members; the hosted one lost only the membership
    with db.service_transaction() as conn:
        owner_of = conn.execute("select owner_id from public.workspaces where id = %s", (shared,)).fetchone()
        memberships = conn.execute(
            "select count(*) as n from public.workspace_members where user_id = %s", (leaving.id,)
        ).fetchone()
    assert owner_of == {"owner_id": partner.id}
    assert state_of(db, shared)["members"] == {partner.id: "owner", host.id: "viewer"}
    assert state_of(db, hosted)["members"] == {host.id: "owner"}
    assert state_of(db, hosted)["invitations"] == 1
    assert memberships == {"n": 0}


# --- the export ---------------------------------------------------------------------------------------------


def test_the_export_holds_the_callers_workspaces_and_own_memberships_only(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, bob, carol = make_user(), make_user(), make_user()
    acme = team(db, bob, {alice.id: "editor", carol.id: "viewer"}, name="Acme")
    team(db, carol, name="Carol's")  # not alice's

    with db.user_transaction(alice.principal) as conn:
        document = account_export(conn)

    personal = personal_workspace(db, alice.id)["id"]
    workspaces = {w["id"]: w for w in document["workspaces"]}
    assert set(workspaces) == {str(personal), str(acme)}
    assert (workspaces[str(personal)]["personal"], workspaces[str(personal)]["owned"]) == (True, True)
    assert (workspaces[str(acme)]["name"], workspaces[str(acme)]["owned"]) == ("Acme", False)
    assert workspaces[str(acme)]["created_at"].endswith("Z")
    memberships = {(m["workspace_id"], m["role"]) for m in document["workspace_memberships"]}
    assert memberships == {(str(personal), "owner"), (str(acme), "editor")}
    # the other members' rows are theirs
    text = repr(document)
    assert str(bob.id) not in text and str(carol.id) not in text


# --- the policies ask the helper once per statement -----------------------------------------------------------


def plan_of(db: Database, user: AppUser, query: str, params: dict[str, Any]) -> str:
    with db.user_transaction(user.principal) as conn:
        rows = conn.execute("explain (verbose, costs off) " + query, params).fetchall()
    return "\n".join(str(next(iter(r.values()))) for r in rows)


@pytest.mark.parametrize(
    ("table", "query"),
    [
        ("workspaces", "select id, name from public.workspaces"),
        ("workspace_members", "select user_id, role from public.workspace_members where workspace_id = %(w)s"),
        ("workspace_invitations", "select id, email from public.workspace_invitations where workspace_id = %(w)s"),
    ],
)
def test_a_list_under_rls_runs_the_membership_check_once_not_per_row(
    db: Database, make_user: Callable[..., AppUser], table: str, query: str
) -> None:
    owner = make_user()
    workspace = team(db, owner, name=f"Plan {uuid.uuid4().hex[:6]}")
    plan = plan_of(db, owner, query, {"w": workspace})
    # the helper is a subplan of its own, run once (hashed), not a call in the per-row filter
    assert "hashed SubPlan" in plan, plan
    assert "has_workspace_role" not in plan, plan
