"""The workspace service against the real database, each call in the caller's own user transaction (RLS as
that user): creation and its limits, 404 for a stranger and 403 for a member without the role, members and
the last owner (also under real concurrent requests), invitations (used once, 7 days, only the invited and
verified email), soft delete and restore."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import psycopg
import pytest
from pydantic import SecretStr

from oneai.auth import authenticate
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.errors import ConflictError, ForbiddenError, NotFoundError, OneAIError, PlanLimitError
from oneai.notifications.mail import OutboxMailer
from oneai.notifications.service import Notifier
from oneai.pagination import PageRequest
from oneai.workspaces import service
from oneai.workspaces.models import InvitationCreate, MemberUpdate, WorkspaceCreate, WorkspaceUpdate
from oneai.workspaces.tokens import invitation_token
from tests.conftest import AppUser, create_user, token_for

pytestmark = pytest.mark.integration

TEST_INVITATION_SECRET = "test-invitation-secret-for-the-suite"


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    with override_settings(
        database_url=SecretStr(database_url), invitation_secret=SecretStr(TEST_INVITATION_SECRET)
    ) as changed:
        yield changed


@pytest.fixture
def wdb(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.close()


def new_user(database_url: str, *, tier: str = "free", verified: bool = True) -> AppUser:
    user = create_user(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.users set subscription_tier = %s where id = %s", (tier, user.id))
    email = user.principal.email
    claims = {"user_metadata": {"email_verified": verified}}
    token = token_for(user.id, email, extra_claims=claims)
    return AppUser(principal=authenticate(f"Bearer {token}"), token=token)


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def create(db: Database, user: AppUser, name: str, industry: str | None = None) -> Any:
    with db.user_transaction(user.principal) as conn:
        return service.create_workspace(conn, db.settings, WorkspaceCreate(name=name, industry=industry))


def add_member(database_url: str, workspace_id: UUID, user: AppUser, role: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, %s)",
            (workspace_id, user.id, role),
        )


def roles_of(database_url: str, workspace_id: UUID) -> dict[UUID, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "select user_id, role from public.workspace_members where workspace_id = %s", (workspace_id,)
        ).fetchall()
    return {row[0]: row[1] for row in rows}


def personal_id(database_url: str, user: AppUser) -> UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select id from public.workspaces where owner_id = %s and personal", (user.id,)
        ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


# --- create, list, detail -------------------------------------------------------------------------------


def test_a_pro_user_creates_a_workspace_with_a_slug_from_its_name_and_is_its_owner(
    wdb: Database, database_url: str
) -> None:
    owner = new_user(database_url, tier="pro")
    name = unique("Acme Support (EU)")
    created = create(wdb, owner, name, industry="retail")
    assert (created.name, created.industry, created.role, created.personal) == (name, "retail", "owner", False)
    assert created.slug == "acme-support-eu-" + name.rsplit(" ", 1)[1]
    assert created.stats.model_dump() == {
        "chatbots": 0,
        "documents": 0,
        "storage_bytes": 0,
        "messages_30d": 0,
        "credits_balance": "0.00",
        "members": 1,
    }
    # AND the slug of the same name for another owner gets a suffix; the same owner's is 409
    other = create(wdb, new_user(database_url, tier="pro"), name)
    assert other.slug == created.slug + "-2"
    with pytest.raises(ConflictError):
        create(wdb, owner, name.upper())
    # AND the list has the personal workspace first, then the new one, with roles and stats
    with wdb.user_transaction(owner.principal) as conn:
        page = service.list_workspaces(conn, PageRequest(limit=1))
        assert [w.personal for w in page.items] == [True] and page.next_cursor
        rest = service.list_workspaces(conn, PageRequest(limit=5, cursor=page.next_cursor))
    assert [(w.id, w.role) for w in rest.items] == [(created.id, "owner")] and rest.next_cursor is None


def test_the_personal_workspace_counts_so_a_free_user_may_not_create_another(
    wdb: Database, database_url: str
) -> None:
    user = new_user(database_url)
    with pytest.raises(PlanLimitError) as refused:
        create(wdb, user, unique("Second"))
    assert (refused.value.status, refused.value.code) == (402, "PLAN_LIMIT")
    assert refused.value.details == {"limit": 1, "used": 1, "tier": "free"}
    # AND a changed limit (ONEAI_WORKSPACE_LIMITS) lets them
    with override_settings(workspace_limits='{"free": {"workspaces_owned": 2}}') as changed:
        database = Database(changed)
        try:
            assert create(database, user, unique("Second")).role == "owner"
        finally:
            database.close()


def test_concurrent_creations_by_one_owner_stay_within_the_limit(settings: Settings, database_url: str) -> None:
    owner = new_user(database_url, tier="pro")  # 5 owned, the personal one among them
    outcomes = run_at_once([lambda db, i=i: create(db, owner, unique(f"Team {i}")) for i in range(6)], settings)
    assert sum(1 for o in outcomes if o == "ok") == 4
    assert sorted(o for o in outcomes if o != "ok") == ["PLAN_LIMIT", "PLAN_LIMIT"]


def test_the_detail_reports_the_owners_tier_limits_and_usage(wdb: Database, database_url: str) -> None:
    user = new_user(database_url)
    with wdb.user_transaction(user.principal) as conn:
        detail = service.get_workspace(conn, wdb.settings, personal_id(database_url, user))
    assert detail.tier == "free" and detail.personal
    assert detail.limits.model_dump() == {
        "workspaces_owned": 1,
        "members": 2,
        "chatbots": 1,
        "documents": 10,
        "storage_bytes": 20 * 1024 * 1024,
        "widget_messages_per_day": 100,
    }
    assert (detail.usage.workspaces_owned, detail.usage.members, detail.usage.chatbots) == (1, 1, 0)


def test_the_stats_count_the_workspaces_documents_and_their_bytes(wdb: Database, database_url: str) -> None:
    user = new_user(database_url)
    workspace_id = personal_id(database_url, user)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for size, status in ((1000, "ready"), (2500, "failed")):
            conn.execute(
                "insert into public.documents (workspace_id, filename, media_type, size_bytes, storage_key, status,"
                " error) values (%s, 'a.pdf', 'application/pdf', %s, %s, %s, %s)",
                (workspace_id, size, f"documents/{workspace_id}/{uuid.uuid4()}", status,
                 "this PDF has no text layer" if status == "failed" else None),
            )  # fmt: skip
    with wdb.user_transaction(user.principal) as conn:
        detail = service.get_workspace(conn, wdb.settings, workspace_id)
    assert (detail.stats.documents, detail.stats.storage_bytes) == (2, 3500)


def test_the_usage_counts_todays_messages_under_the_plans_daily_limit(wdb: Database, database_url: str) -> None:
    user = new_user(database_url)
    workspace_id = personal_id(database_url, user)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(  # today's 3, and yesterday's 40 that do not count
            "insert into public.workspace_message_counts (workspace_id, day, used) values"
            " (%(w)s, (now() at time zone 'utc')::date, 3), (%(w)s, (now() at time zone 'utc')::date - 1, 40)",
            {"w": workspace_id},
        )
    with wdb.user_transaction(user.principal) as conn:
        detail = service.get_workspace(conn, wdb.settings, workspace_id)
    assert (detail.usage.widget_messages_per_day, detail.limits.widget_messages_per_day) == (3, 100)


# --- 404 for strangers, 403 for too low a role ----------------------------------------------------------


def test_a_stranger_gets_404_for_everything_of_a_workspace_and_a_viewer_403_for_writes(
    wdb: Database, database_url: str
) -> None:
    owner, viewer, stranger = (new_user(database_url, tier="pro") for _ in range(3))
    workspace = create(wdb, owner, unique("Secret"))
    add_member(database_url, workspace.id, viewer, "viewer")
    s = wdb.settings
    calls: list[Callable[[Any, AppUser], object]] = [
        lambda c, u: service.get_workspace(c, s, workspace.id),
        lambda c, u: service.update_workspace(c, s, workspace.id, WorkspaceUpdate(name="Mine now")),
        lambda c, u: service.delete_workspace(c, workspace.id),
        lambda c, u: service.restore_workspace(c, s, workspace.id),
        lambda c, u: service.list_members(c, workspace.id, PageRequest()),
        lambda c, u: service.change_role(c, workspace.id, owner.id, MemberUpdate(role="viewer")),
        lambda c, u: service.remove_member(c, u.id, workspace.id, owner.id),
        lambda c, u: service.invite(c, s, workspace.id, InvitationCreate(email="x@example.test", role="viewer")),
        lambda c, u: service.list_invitations(c, workspace.id, PageRequest()),
        lambda c, u: service.withdraw_invitation(c, workspace.id, uuid.uuid4()),
    ]
    for call in calls:
        with pytest.raises(NotFoundError), wdb.user_transaction(stranger.principal) as conn:
            call(conn, stranger)
    # AND the viewer reads but every write is 403 (restore of a live workspace is 409 for anyone)
    with wdb.user_transaction(viewer.principal) as conn:
        assert service.get_workspace(conn, s, workspace.id).role == "viewer"
        assert len(service.list_members(conn, workspace.id, PageRequest()).items) == 2
    for call in calls[1:3] + calls[5:10]:
        with pytest.raises(ForbiddenError), wdb.user_transaction(viewer.principal) as conn:
            call(conn, viewer)
    assert roles_of(database_url, workspace.id) == {owner.id: "owner", viewer.id: "viewer"}


def test_an_admin_changes_the_workspace_and_members_but_neither_deletes_it_nor_touches_owners(
    wdb: Database, database_url: str
) -> None:
    owner, admin, editor = (new_user(database_url, tier="pro") for _ in range(3))
    workspace = create(wdb, owner, unique("Shop"))
    add_member(database_url, workspace.id, admin, "admin")
    add_member(database_url, workspace.id, editor, "editor")
    with wdb.user_transaction(admin.principal) as conn:
        updated = service.update_workspace(
            conn, wdb.settings, workspace.id, WorkspaceUpdate(industry=None, settings={"tone": "warm"})
        )
        assert (updated.industry, updated.settings) == (None, {"tone": "warm"})
        assert service.change_role(conn, workspace.id, editor.id, MemberUpdate(role="viewer")).role == "viewer"
    for call in (
        lambda c: service.delete_workspace(c, workspace.id),
        lambda c: service.change_role(c, workspace.id, owner.id, MemberUpdate(role="viewer")),
        lambda c: service.change_role(c, workspace.id, editor.id, MemberUpdate(role="owner")),
        lambda c: service.remove_member(c, admin.id, workspace.id, owner.id),
    ):
        with pytest.raises(ForbiddenError), wdb.user_transaction(admin.principal) as conn:
            call(conn)
    # AND an unknown member id is 404, and the admin may leave
    with pytest.raises(NotFoundError), wdb.user_transaction(admin.principal) as conn:
        service.change_role(conn, workspace.id, uuid.uuid4(), MemberUpdate(role="viewer"))
    with wdb.user_transaction(admin.principal) as conn:
        service.remove_member(conn, admin.id, workspace.id, admin.id)
    assert roles_of(database_url, workspace.id) == {owner.id: "owner", editor.id: "viewer"}


# --- the last owner -------------------------------------------------------------------------------------


def test_the_last_owner_can_neither_leave_nor_be_demoted_and_ownership_passes_to_another_owner(
    wdb: Database, database_url: str
) -> None:
    owner, second = new_user(database_url, tier="pro"), new_user(database_url, tier="enterprise")
    workspace = create(wdb, owner, unique("Pair"))
    for call in (
        lambda c: service.remove_member(c, owner.id, workspace.id, owner.id),
        lambda c: service.change_role(c, workspace.id, owner.id, MemberUpdate(role="admin")),
    ):
        with pytest.raises(ConflictError), wdb.user_transaction(owner.principal) as conn:
            call(conn)
    with pytest.raises(ConflictError), wdb.user_transaction(owner.principal) as conn:  # the personal one too
        service.remove_member(conn, owner.id, personal_id(database_url, owner), owner.id)
    # WHEN a second owner is made and the first leaves
    add_member(database_url, workspace.id, second, "viewer")
    with wdb.user_transaction(owner.principal) as conn:
        service.change_role(conn, workspace.id, second.id, MemberUpdate(role="owner"))
        service.remove_member(conn, owner.id, workspace.id, owner.id)
    # THEN the second owns it, and its limits are the second owner's tier's
    with wdb.user_transaction(second.principal) as conn:
        detail = service.get_workspace(conn, wdb.settings, workspace.id)
    assert (detail.tier, detail.limits.members, detail.role) == ("enterprise", 100, "owner")


def run_at_once(calls: list[Callable[[Database], object]], settings: Settings) -> list[str]:
    """Each call in its own thread with its own connection, released together; "ok" or the error code."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def run(index: int) -> None:
        database = Database(settings)
        try:
            barrier.wait()
            calls[index](database)
            outcomes[index] = "ok"
        except OneAIError as exc:
            outcomes[index] = exc.code
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("change", ["demote", "remove"])
def test_two_owners_removing_or_demoting_each_other_at_once_leave_one_owner(
    settings: Settings, wdb: Database, database_url: str, change: str
) -> None:
    for _ in range(5):
        a, b = new_user(database_url, tier="pro"), new_user(database_url, tier="pro")
        workspace = create(wdb, a, unique("Duel"))
        add_member(database_url, workspace.id, b, "owner")

        def act(actor: AppUser, target: AppUser, workspace_id: UUID) -> Callable[[Database], object]:
            def call(db: Database) -> object:
                with db.user_transaction(actor.principal) as conn:
                    if change == "demote":
                        return service.change_role(conn, workspace_id, target.id, MemberUpdate(role="viewer"))
                    service.remove_member(conn, actor.id, workspace_id, target.id)
                    return None

            return call

        outcomes = run_at_once([act(a, b, workspace.id), act(b, a, workspace.id)], settings)
        assert sorted(outcomes)[1] == "ok" and sorted(outcomes)[0] in ("CONFLICT", "FORBIDDEN", "NOT_FOUND"), (
            outcomes
        )
        owners = [user for user, role in roles_of(database_url, workspace.id).items() if role == "owner"]
        assert len(owners) == 1


# --- invitations ----------------------------------------------------------------------------------------


def invite(db: Database, admin: AppUser, workspace_id: UUID, email: str, role: str = "editor") -> Any:
    with db.user_transaction(admin.principal) as conn:
        return service.invite(conn, db.settings, workspace_id, InvitationCreate(email=email, role=role))  # type: ignore[arg-type]


def accept(db: Database, user: AppUser, token: str) -> Any:
    with db.user_transaction(user.principal) as conn:
        return service.accept_invitation(conn, db.settings, user.principal.claims, token)


def test_an_invitation_is_accepted_once_by_the_invited_verified_email_only(
    wdb: Database, database_url: str
) -> None:
    owner, invitee, other = (new_user(database_url, tier="pro") for _ in range(3))
    workspace = create(wdb, owner, unique("Team"))
    assert invitee.principal.email is not None
    invitation = invite(wdb, owner, workspace.id, invitee.principal.email.upper())
    assert (invitation.email, invitation.role) == (invitee.principal.email, "editor")
    token = invitation_token(wdb.settings, invitation.id)
    # the token is not stored: only its SHA-256
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = conn.execute(
            "select token_hash from public.workspace_invitations where id = %s", (invitation.id,)
        ).fetchone()
    assert stored is not None and token.encode() not in bytes(stored[0])
    # another (verified) email: 404, as for a token that does not exist
    for user, bad_token in ((other, token), (invitee, token[:-2] + "xx"), (invitee, "x" * 101)):
        with pytest.raises(NotFoundError):
            accept(wdb, user, bad_token)
    # the invited email, not verified: 403
    unverified = AppUser(
        principal=authenticate(f"Bearer {token_for(invitee.id, invitee.principal.email)}"), token=""
    )
    with pytest.raises(ForbiddenError):
        accept(wdb, unverified, token)
    # the invited, verified email: a member with the invitation's role, once
    joined = accept(wdb, invitee, token)
    assert (joined.id, joined.role, joined.stats.members) == (workspace.id, "editor", 2)
    with pytest.raises(NotFoundError):
        accept(wdb, invitee, token)
    with wdb.user_transaction(owner.principal) as conn:
        assert service.list_invitations(conn, workspace.id, PageRequest()).items == []


def test_an_expired_or_withdrawn_invitation_is_refused_and_a_new_one_replaces_an_expired_one(
    wdb: Database, database_url: str
) -> None:
    owner, invitee = new_user(database_url, tier="pro"), new_user(database_url)
    workspace = create(wdb, owner, unique("Late"))
    assert invitee.principal.email is not None
    first = invite(wdb, owner, workspace.id, invitee.principal.email)
    with pytest.raises(ConflictError):  # one pending invitation per address
        invite(wdb, owner, workspace.id, invitee.principal.email)
    assert owner.principal.email is not None
    with pytest.raises(ConflictError):  # a member's address
        invite(wdb, owner, workspace.id, owner.principal.email.upper())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.workspace_invitations set created_at = now() - interval '8 days',"
            " expires_at = now() - interval '1 day' where id = %s",
            (first.id,),
        )
    with pytest.raises(NotFoundError):
        accept(wdb, invitee, invitation_token(wdb.settings, first.id))
    second = invite(wdb, owner, workspace.id, invitee.principal.email)  # replaces the expired one
    with wdb.user_transaction(owner.principal) as conn:
        service.withdraw_invitation(conn, workspace.id, second.id)
    with pytest.raises(NotFoundError):
        accept(wdb, invitee, invitation_token(wdb.settings, second.id))
    assert invitee.id not in roles_of(database_url, workspace.id)


def test_members_over_the_owners_limit_are_refused_on_invitation_and_on_accept(
    wdb: Database, database_url: str
) -> None:
    owner, invitee, extra = new_user(database_url), new_user(database_url), new_user(database_url)
    workspace_id = personal_id(database_url, owner)  # free: 2 members
    assert invitee.principal.email is not None
    invitation = invite(wdb, owner, workspace_id, invitee.principal.email)
    with pytest.raises(PlanLimitError) as on_invite:
        invite(wdb, owner, workspace_id, "third@example.test")
    assert on_invite.value.details == {"limit": 2, "used": 2, "tier": "free"}
    add_member(database_url, workspace_id, extra, "viewer")  # the workspace fills up meanwhile
    with pytest.raises(PlanLimitError) as on_accept:
        accept(wdb, invitee, invitation_token(wdb.settings, invitation.id))
    assert on_accept.value.details == {"limit": 2, "used": 2, "tier": "free"}
    assert invitee.id not in roles_of(database_url, workspace_id)


# --- delete and restore ---------------------------------------------------------------------------------


def test_an_owner_deletes_and_restores_within_30_days_and_a_personal_workspace_stays(
    wdb: Database, database_url: str
) -> None:
    owner, admin = new_user(database_url, tier="pro"), new_user(database_url, tier="pro")
    workspace = create(wdb, owner, unique("Gone"))
    add_member(database_url, workspace.id, admin, "admin")
    with pytest.raises(ConflictError), wdb.user_transaction(owner.principal) as conn:
        service.delete_workspace(conn, personal_id(database_url, owner))
    with wdb.user_transaction(owner.principal) as conn:
        service.delete_workspace(conn, workspace.id)
    # THEN it is gone for its members: not listed, 404, restorable only by an owner
    with wdb.user_transaction(admin.principal) as conn:
        assert workspace.id not in [w.id for w in service.list_workspaces(conn, PageRequest()).items]
    with pytest.raises(NotFoundError), wdb.user_transaction(admin.principal) as conn:
        service.get_workspace(conn, wdb.settings, workspace.id)
    with pytest.raises(ForbiddenError), wdb.user_transaction(admin.principal) as conn:
        service.restore_workspace(conn, wdb.settings, workspace.id)
    with wdb.user_transaction(owner.principal) as conn:
        assert service.restore_workspace(conn, wdb.settings, workspace.id).id == workspace.id
    with pytest.raises(ConflictError), wdb.user_transaction(owner.principal) as conn:
        service.restore_workspace(conn, wdb.settings, workspace.id)
    # AND past 30 days it cannot be restored
    with wdb.user_transaction(owner.principal) as conn:
        service.delete_workspace(conn, workspace.id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.workspaces set deleted_at = now() - interval '31 days' where id = %s", (workspace.id,)
        )
    with pytest.raises(NotFoundError), wdb.user_transaction(owner.principal) as conn:
        service.restore_workspace(conn, wdb.settings, workspace.id)


# --- the invitation email -------------------------------------------------------------------------------


def test_the_invitation_email_carries_a_link_that_accepts_and_goes_once_and_not_after_a_withdrawal(
    wdb: Database, database_url: str, tmp_path: Path
) -> None:
    owner, invitee = new_user(database_url, tier="pro"), new_user(database_url)
    workspace = create(wdb, owner, unique("Mailed"))
    assert invitee.principal.email is not None
    notifier = Notifier(wdb, OutboxMailer(wdb.settings, str(tmp_path)), sender="OneAI <no-reply@oneai.test>")

    def event_of(invitation: Any) -> dict[str, Any]:
        detail = {"user_id": str(owner.id), "invitation_id": str(invitation.id)}
        return {"source": "oneai.workspaces", "detail-type": "WorkspaceInvitationCreated", "detail": detail}

    withdrawn = invite(wdb, owner, workspace.id, invitee.principal.email)
    with wdb.user_transaction(owner.principal) as conn:
        service.withdraw_invitation(conn, workspace.id, withdrawn.id)
    assert notifier.deliver_event(event_of(withdrawn)).outcome == "no_recipient"
    invitation = invite(wdb, owner, workspace.id, invitee.principal.email)
    assert [notifier.deliver_event(event_of(invitation)).outcome for _ in range(2)] == ["sent", "duplicate"]
    [path] = tmp_path.glob("*.eml")
    email = cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
    assert email["To"] == invitee.principal.email and email["List-Unsubscribe"] is None
    assert "invited you to the workspace" in str(email["Subject"])
    body = email.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(cast(EmailMessage, body).get_content())
    link = f"{wdb.settings.invitation_url_base}/{invitation_token(wdb.settings, invitation.id)}"
    assert link in text and workspace.name in text and "as editor" in text
    # the link's token is the one that accepts
    assert accept(wdb, invitee, link.rsplit("/", 1)[1]).id == workspace.id
