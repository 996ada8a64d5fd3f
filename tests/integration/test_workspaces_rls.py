"""Workspaces, members and invitations at the SQL level (issue 23): every user has a personal workspace
from the transaction that creates them, membership is the only way in (a non-member sees nothing, a member
without the role writes nothing), and the data keeps its own rules (no deleting a personal workspace, no
workspace without an owner, even under concurrent changes). Each test connects as `authenticated` with a
user's claims, through the product's own user transactions."""

from __future__ import annotations

import hashlib
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from oneai.account.provisioning import provision_dev_user
from oneai.auth import Principal
from oneai.db.connection import Database
from oneai.db.migrate import default_migrations_dir, migrate
from tests.conftest import AppUser

WORKSPACE_MIGRATION = "20261123100000"
WORKSPACE_TABLES = ("workspaces", "workspace_members", "workspace_invitations")
Role = str


def personal_workspace(db: Database, user_id: UUID) -> dict[str, Any]:
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select w.id, w.slug, w.name, w.owner_id, m.role from public.workspaces w"
            " join public.workspace_members m on m.workspace_id = w.id and m.user_id = w.owner_id"
            " where w.owner_id = %s and w.personal",
            (user_id,),
        ).fetchall()
    assert len(rows) == 1
    return dict(rows[0])


def team(db: Database, owner: AppUser, members: dict[UUID, Role] | None = None, name: str = "Acme") -> UUID:
    """A workspace made by the service (creation comes with the routes): its owner and members."""
    slug = f"team-{uuid.uuid4().hex[:12]}"
    with db.service_transaction() as conn:
        row = conn.execute(
            "insert into public.workspaces (name, slug, owner_id) values (%s, %s, %s) returning id",
            (name, slug, owner.id),
        ).fetchone()
        assert row is not None
        for user_id, role in {owner.id: "owner", **(members or {})}.items():
            conn.execute(
                "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, %s)",
                (row["id"], user_id, role),
            )
    return UUID(str(row["id"]))


def invite_params(workspace_id: UUID, inviter: UUID) -> dict[str, Any]:
    return {
        "workspace": workspace_id,
        "email": f"{uuid.uuid4().hex[:8]}@example.test",
        "hash": hashlib.sha256(uuid.uuid4().bytes).digest(),
        "by": inviter,
    }


INVITE = (
    "insert into public.workspace_invitations (workspace_id, email, role, token_hash, invited_by)"
    " values (%(workspace)s, %(email)s, 'editor', %(hash)s, %(by)s)"
)


def state_of(db: Database, workspace_id: UUID) -> dict[str, Any]:
    """What the service sees of a workspace: its name, deletion, members and invitations."""
    with db.service_transaction() as conn:
        workspace = conn.execute(
            "select name, deleted_at from public.workspaces where id = %s", (workspace_id,)
        ).fetchone()
        members = conn.execute(
            "select user_id, role from public.workspace_members where workspace_id = %s", (workspace_id,)
        ).fetchall()
        invitations = conn.execute(
            "select count(*) as n from public.workspace_invitations where workspace_id = %s", (workspace_id,)
        ).fetchone()
    assert invitations is not None
    return {
        "workspace": None if workspace is None else (workspace["name"], workspace["deleted_at"]),
        "members": {r["user_id"]: r["role"] for r in members},
        "invitations": invitations["n"],
    }


# --- the personal workspace -----------------------------------------------------------------------------


def test_every_new_user_owns_a_personal_workspace_made_in_the_same_transaction(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    workspace = personal_workspace(db, user.id)
    assert workspace["role"] == "owner"
    assert workspace["slug"] == "personal-" + user.id.hex
    # AND the user sees exactly it under RLS
    with db.user_transaction(user.principal) as conn:
        seen = conn.execute("select id, personal from public.workspaces").fetchall()
    assert [(r["id"], r["personal"]) for r in seen] == [(workspace["id"], True)]
    # AND it is written by the transaction that creates the user: rolled back with it, nothing stays
    never = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (never, f"{never.hex[:8]}@x.test"))
        inside = conn.execute("select count(*) from public.workspaces where owner_id = %s", (never,)).fetchone()
        conn.rollback()
        after = conn.execute("select count(*) from public.workspaces where owner_id = %s", (never,)).fetchone()
    assert (inside, after) == ((1,), (0,))


def test_a_dev_user_provisioned_on_first_use_gets_the_personal_workspace(settings_with_db: Any) -> None:
    stranger = Principal(
        user_id=uuid.uuid4(),
        email="first-use@example.test",
        role="authenticated",
        claims={"role": "authenticated"},
    )
    dev = Database(settings_with_db, provision_user=provision_dev_user)
    try:
        with dev.user_transaction(stranger) as conn:
            rows = conn.execute(
                "select w.personal, m.role from public.workspaces w join public.workspace_members m"
                " on m.workspace_id = w.id"
            ).fetchall()
    finally:
        dev.close()
    assert [(r["personal"], r["role"]) for r in rows] == [(True, "owner")]


def test_users_who_existed_before_the_migration_get_their_personal_workspace(
    admin_database_url: str, tmp_path: Path
) -> None:
    name = f"oneai_ws_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = make_conninfo(admin_database_url, dbname=name)
    try:
        earlier = tmp_path / "earlier"
        earlier.mkdir()
        for path in sorted(default_migrations_dir().glob("*.sql")):
            if path.name < WORKSPACE_MIGRATION:
                shutil.copy(path, earlier / path.name)
        migrate(url, local_shim=True, directory=earlier)
        old_user = uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("insert into auth.users (id, email) values (%s, 'old@example.test')", (old_user,))
        migrate(url, local_shim=True)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "select w.slug, w.personal, m.role from public.workspaces w"
                " join public.workspace_members m on m.workspace_id = w.id and m.user_id = w.owner_id"
                " where w.owner_id = %s",
                (old_user,),
            ).fetchall()
        assert rows == [("personal-" + old_user.hex, True, "owner")]
    finally:
        with psycopg.connect(admin_database_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def test_a_personal_workspace_cannot_be_deleted_softly_or_for_good(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    workspace = personal_workspace(db, user.id)
    # its owner's soft delete is refused by a constraint
    with pytest.raises(psycopg.errors.CheckViolation), db.user_transaction(user.principal) as conn:
        conn.execute("update public.workspaces set deleted_at = now() where id = %s", (workspace["id"],))
    # and even the service cannot delete it while its owner exists
    with pytest.raises(psycopg.errors.CheckViolation), db.service_transaction() as conn:
        conn.execute("delete from public.workspaces where id = %s", (workspace["id"],))
    assert personal_workspace(db, user.id)["id"] == workspace["id"]


# --- membership is the only way in ----------------------------------------------------------------------


def test_a_non_member_sees_and_changes_nothing_of_a_workspace(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, stranger = make_user(), make_user()
    workspace = team(db, alice)
    with db.user_transaction(alice.principal) as conn:
        conn.execute(INVITE, invite_params(workspace, alice.id))
    before = state_of(db, workspace)
    # WHEN a stranger reads every row of the three tables, unscoped
    with db.user_transaction(stranger.principal) as conn:
        seen = {
            table: conn.execute(f"select workspace_id from public.{table}").fetchall()  # noqa: S608
            for table in ("workspace_members", "workspace_invitations")
        }
        workspaces = conn.execute("select id from public.workspaces").fetchall()
    # THEN only their own personal workspace exists for them
    assert [r["id"] for r in workspaces] == [personal_workspace(db, stranger.id)["id"]]
    assert {r["workspace_id"] for r in seen["workspace_members"]} == {r["id"] for r in workspaces}
    assert seen["workspace_invitations"] == []
    # AND updates and deletes aimed at the workspace touch no row
    changes = [
        ("update public.workspaces set name = 'taken' where id = %s", (workspace,)),
        ("update public.workspace_members set role = 'viewer' where workspace_id = %s", (workspace,)),
        ("delete from public.workspace_members where workspace_id = %s", (workspace,)),
        ("delete from public.workspace_invitations where workspace_id = %s", (workspace,)),
    ]
    for statement, params in changes:
        with db.user_transaction(stranger.principal) as conn:
            assert conn.execute(statement, params).rowcount == 0, statement
    # AND making themselves a member, or inviting anyone, is refused
    refused = [
        (
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'viewer')",
            (workspace, stranger.id),
        ),
        (INVITE, invite_params(workspace, stranger.id)),
    ]
    for statement, params in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(stranger.principal) as conn:
            conn.execute(statement, params)
    assert state_of(db, workspace) == before


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_a_member_below_admin_reads_but_cannot_change_the_workspace_or_its_members(
    db: Database, make_user: Callable[..., AppUser], role: Role
) -> None:
    owner, member, other = make_user(), make_user(), make_user()
    workspace = team(db, owner, {member.id: role, other.id: "viewer"})
    before = state_of(db, workspace)
    with db.user_transaction(member.principal) as conn:
        assert [r["id"] for r in conn.execute("select id from public.workspaces where not personal")] == [
            workspace
        ]
        assert (
            len(
                conn.execute(
                    "select 1 from public.workspace_members where workspace_id = %s", (workspace,)
                ).fetchall()
            )
            == 3
        )
    silently_nothing = [
        ("update public.workspaces set name = 'Renamed' where id = %s", (workspace,)),
        (
            "update public.workspace_members set role = 'editor' where workspace_id = %s and user_id = %s",
            (workspace, other.id),
        ),
        (
            "update public.workspace_members set role = 'admin' where workspace_id = %s and user_id = %s",
            (workspace, member.id),
        ),
        ("delete from public.workspace_members where workspace_id = %s and user_id = %s", (workspace, other.id)),
    ]
    for statement, params in silently_nothing:
        with db.user_transaction(member.principal) as conn:
            assert conn.execute(statement, params).rowcount == 0, statement
    refused = [
        (INVITE, invite_params(workspace, member.id)),
        (
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'viewer')",
            (workspace, make_user().id),
        ),
    ]
    for statement, params in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(member.principal) as conn:
            conn.execute(statement, params)
    assert state_of(db, workspace) == before
    # AND leaving is theirs
    with db.user_transaction(member.principal) as conn:
        assert (
            conn.execute(
                "delete from public.workspace_members where workspace_id = %s and user_id = %s",
                (workspace, member.id),
            ).rowcount
            == 1
        )


def test_an_admin_manages_members_but_not_owners_nor_deletion(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, admin, editor = make_user(), make_user(), make_user()
    workspace = team(db, owner, {admin.id: "admin", editor.id: "editor"})
    with db.user_transaction(admin.principal) as conn:
        assert (
            conn.execute("update public.workspaces set name = 'Renamed' where id = %s", (workspace,)).rowcount == 1
        )
        assert (
            conn.execute(
                "update public.workspace_members set role = 'viewer' where workspace_id = %s and user_id = %s",
                (workspace, editor.id),
            ).rowcount
            == 1
        )
        conn.execute(INVITE, invite_params(workspace, admin.id))
        # the owner's row is not theirs to change
        assert (
            conn.execute(
                "update public.workspace_members set role = 'admin' where workspace_id = %s and user_id = %s",
                (workspace, owner.id),
            ).rowcount
            == 0
        )
        assert (
            conn.execute(
                "delete from public.workspace_members where workspace_id = %s and user_id = %s",
                (workspace, owner.id),
            ).rowcount
            == 0
        )
        # the hash of an invitation's token is never read back
        conn.execute("savepoint hash")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select token_hash from public.workspace_invitations")
        conn.execute("rollback to savepoint hash")
    # making someone an owner, or deleting the workspace, takes an owner
    for statement, params in (
        (
            "update public.workspace_members set role = 'owner' where workspace_id = %s and user_id = %s",
            (workspace, editor.id),
        ),
        ("update public.workspaces set deleted_at = now() where id = %s", (workspace,)),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(admin.principal) as conn:
            conn.execute(statement, params)
    assert state_of(db, workspace) == {
        "workspace": ("Renamed", None),
        "members": {owner.id: "owner", admin.id: "admin", editor.id: "viewer"},
        "invitations": 1,
    }
    # AND the owner deletes and restores it
    with db.user_transaction(owner.principal) as conn:
        assert (
            conn.execute("update public.workspaces set deleted_at = now() where id = %s", (workspace,)).rowcount
            == 1
        )
    assert state_of(db, workspace)["workspace"][1] is not None
    with db.user_transaction(owner.principal) as conn:
        assert (
            conn.execute("update public.workspaces set deleted_at = null where id = %s", (workspace,)).rowcount
            == 1
        )
    assert state_of(db, workspace)["workspace"] == ("Renamed", None)


# --- owners ---------------------------------------------------------------------------------------------


def test_the_last_owner_can_neither_leave_nor_be_demoted(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner, admin = make_user(), make_user()
    workspace = team(db, owner, {admin.id: "admin"})
    for statement in (
        "delete from public.workspace_members where workspace_id = %s and user_id = %s",
        "update public.workspace_members set role = 'admin' where workspace_id = %s and user_id = %s",
    ):
        with pytest.raises(psycopg.errors.CheckViolation), db.user_transaction(owner.principal) as conn:
            conn.execute(statement, (workspace, owner.id))
    assert state_of(db, workspace)["members"] == {owner.id: "owner", admin.id: "admin"}


def test_two_owners_stepping_down_at_once_leave_one_owner(db: Database, make_user: Callable[..., AppUser]) -> None:
    first, second = make_user(), make_user()
    workspace = team(db, first, {second.id: "owner"})
    first_changed = threading.Event()
    first_may_commit = threading.Event()
    outcomes: dict[str, str] = {}

    def step_down(who: AppUser, label: str, hold: bool) -> None:
        try:
            with db.user_transaction(who.principal) as conn:
                conn.execute(
                    "update public.workspace_members set role = 'admin' where workspace_id = %s and user_id = %s",
                    (workspace, who.id),
                )
                if hold:  # the first demotion is done but not committed while the second one runs
                    first_changed.set()
                    first_may_commit.wait(10)
            outcomes[label] = "committed"
        except psycopg.errors.CheckViolation:
            outcomes[label] = "refused"

    holder = threading.Thread(target=step_down, args=(first, "first", True))
    holder.start()
    assert first_changed.wait(10)
    follower = threading.Thread(target=step_down, args=(second, "second", False))
    follower.start()
    follower.join(0.5)
    assert follower.is_alive()  # it waits for the first transaction (the workspace row is locked)
    first_may_commit.set()
    holder.join(10)
    follower.join(10)
    assert outcomes == {"first": "committed", "second": "refused"}
    assert state_of(db, workspace)["members"] == {first.id: "admin", second.id: "owner"}


def test_erasing_a_user_takes_the_workspaces_they_alone_own_and_hands_over_shared_ones(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    leaving, partner, host = make_user(), make_user(), make_user()
    alone = team(db, leaving, {host.id: "editor"}, name="Alone")
    shared = team(db, leaving, {partner.id: "owner"}, name="Shared")
    hosted = team(db, host, {leaving.id: "editor"}, name="Hosted")
    personal = personal_workspace(db, leaving.id)["id"]
    with db.service_transaction() as conn:
        assert conn.execute("select oneai_private.erase_user(%s) as erased", (leaving.id,)).fetchone() == {
            "erased": True
        }
        rows = conn.execute(
            "select id, owner_id from public.workspaces where id = any(%s)", ([alone, shared, hosted, personal],)
        ).fetchall()
    # THEN the workspace they alone owned and their personal one are gone, the shared one is the partner's
    assert {r["id"]: r["owner_id"] for r in rows} == {shared: partner.id, hosted: host.id}
    assert state_of(db, shared)["members"] == {partner.id: "owner"}
    assert state_of(db, hosted)["members"] == {host.id: "owner"}


# --- the helpers every policy uses ----------------------------------------------------------------------


def test_every_workspace_policy_asks_the_one_membership_helper(db: Database) -> None:
    with db.service_transaction() as conn:
        helper = conn.execute(
            "select p.provolatile, p.prosecdef, p.proconfig from pg_proc p"
            " where p.oid = 'oneai_private.has_workspace_role(uuid, text)'::regprocedure"
        ).fetchone()
        policies = conn.execute(
            "select tablename, policyname, coalesce(qual, '') || coalesce(with_check, '') as rule"
            " from pg_policies where schemaname = 'public' and (tablename like 'workspace%%'"
            " or tablename in (select table_name from information_schema.columns"
            "   where table_schema = 'public' and column_name = 'workspace_id'))"
        ).fetchall()
        probe = conn.execute(
            "select indexdef from pg_indexes where schemaname = 'public' and tablename = 'workspace_members'"
            " and indexdef like '%%(workspace_id, user_id)%%' and indexdef like 'CREATE UNIQUE%%'"
        ).fetchall()
    # stable, security definer, search_path pinned
    assert helper is not None
    assert (helper["provolatile"], helper["prosecdef"], helper["proconfig"]) == ("s", True, ['search_path=""'])
    assert {r["tablename"] for r in policies} >= set(WORKSPACE_TABLES)
    # every policy asks the membership helpers (the set form, once per statement: 20261123120000), but
    # on the user's own rows that name a workspace too (a conversation with a chatbot, its usage): those
    # stay the user's by their own policy, and filing one under a workspace asks the helper
    helpers = ("has_workspace_role", "workspaces_with_role")
    users_own = {"conversations": "conversations_own", "usage_records": "usage_records_select_own"}
    assert [
        r["policyname"]
        for r in policies
        if not any(h in r["rule"] for h in helpers) and users_own.get(r["tablename"]) != r["policyname"]
    ] == []
    assert {r["policyname"] for r in policies if r["tablename"] == "conversations"} > {"conversations_own"}
    assert len(probe) == 1
