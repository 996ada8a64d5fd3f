"""Row Level Security applies to our own queries: a user transaction sees and changes only the caller's
rows whatever the SQL says, `anon` sees nothing but a shared snapshot, the service role sees all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from oneai.conversations import service
from oneai.conversations.models import ConversationCreate, NewMessage
from oneai.db.connection import Database

MODEL = "openai/gpt-4o-mini"
# table -> the column naming its owner
USER_TABLES = {
    "users": "id",
    "conversations": "user_id",
    "chat_messages": "user_id",
    "usage_quotas": "user_id",
    "usage_records": "user_id",
    "share_links": "user_id",
    "subscriptions": "user_id",
    "subscription_history": "user_id",
}


@dataclass(frozen=True)
class Owner:
    user: Any
    conversation_id: UUID
    share_token: str

    @property
    def id(self) -> UUID:
        return self.user.id


def owner_with_data(db: Database, database_url: str, user: Any, tag: str) -> Owner:
    """A user with a conversation of two messages, a share link, and billing rows written by the service."""
    with db.user_transaction(user.principal) as conn:
        conversation = service.create_conversation(conn, user.id, ConversationCreate(title=f"{tag} chat"))
        question = service.append_message(
            conn, user.id, conversation.id, NewMessage(role="user", content=f"{tag} asks", model_id=MODEL)
        )
        service.add_reply(
            conn, user.id, conversation.id, question.id, NewMessage(role="assistant", content="ok", model_id=MODEL)
        )
        share = service.share_conversation(conn, user.id, conversation.id, "https://oneai.test/shared")
    with psycopg.connect(database_url, autocommit=True) as admin:
        subscription_id = admin.execute(
            "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id)"
            " values (%s, 'plan_pro', 'pro', 'active', %s) returning id",
            (user.id, f"sub_{user.id.hex[:14]}"),
        ).fetchone()
        assert subscription_id is not None
        admin.execute(
            "insert into public.subscription_history (user_id, subscription_id, old_tier, new_tier, change_reason)"
            " values (%s, %s, 'free', 'pro', 'new_subscription')",
            (user.id, subscription_id[0]),
        )
        admin.execute(
            "insert into public.usage_records (user_id, conversation_id, quota_key, requested_model, model_id,"
            " prompt_tokens, completion_tokens, cost) values (%s, %s, 'small_messages', %s, %s, 10, 5, 0.0001)",
            (user.id, conversation.id, MODEL, MODEL),
        )
    return Owner(user=user, conversation_id=conversation.id, share_token=share.token)


@pytest.fixture
def alice_and_bob(db: Database, make_user: Any, database_url: str) -> tuple[Owner, Owner]:
    return (
        owner_with_data(db, database_url, make_user(), "alice"),
        owner_with_data(db, database_url, make_user(), "bob"),
    )


def owners_seen(conn: Any, table: str) -> list[UUID]:
    query = sql.SQL("select {} as owner from {}").format(
        sql.Identifier(USER_TABLES[table]), sql.Identifier("public", table)
    )
    return [row["owner"] for row in conn.execute(query)]


def test_every_public_table_but_reference_data_has_rls_enabled(db: Database) -> None:
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select c.relname, c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'public' and c.relkind in ('r', 'p')"
        ).fetchall()
        writable_reference = conn.execute(
            "select has_table_privilege('authenticated', 'public.tier_quota_limits', 'INSERT, UPDATE, DELETE')"
            " or has_table_privilege('anon', 'public.tier_quota_limits', 'INSERT, UPDATE, DELETE') as w"
        ).fetchone()
    tables = {r["relname"]: r["relrowsecurity"] for r in rows}
    assert set(USER_TABLES) | {"processed_webhook_events", "tier_quota_limits"} <= set(tables)
    assert [name for name, secured in tables.items() if not secured and name != "tier_quota_limits"] == []
    # the one table without RLS is read-only reference data for the API roles
    assert writable_reference is not None and writable_reference["w"] is False


def test_unscoped_selects_return_only_the_callers_rows(db: Database, alice_and_bob: tuple[Owner, Owner]) -> None:
    alice, bob = alice_and_bob
    # WHEN Alice's transaction selects every row of every user table, without any WHERE clause
    with db.user_transaction(alice.user.principal) as conn:
        seen = {table: owners_seen(conn, table) for table in USER_TABLES}
    # THEN she gets exactly her own rows
    expected_counts = {
        "users": 1,
        "conversations": 1,
        "chat_messages": 2,
        "usage_quotas": 3,
        "usage_records": 1,
        "share_links": 1,
        "subscriptions": 1,
        "subscription_history": 1,
    }
    assert {t: len(ids) for t, ids in seen.items()} == expected_counts
    assert {t: set(ids) for t, ids in seen.items()} == {t: {alice.id} for t in USER_TABLES}
    # AND the service role (webhooks, sweeps) sees both users
    with db.service_transaction() as conn:
        for table in USER_TABLES:
            assert {alice.id, bob.id} <= set(owners_seen(conn, table)), table


def test_a_user_cannot_reset_quotas_or_grant_herself_a_tier(
    db: Database, alice_and_bob: tuple[Owner, Owner], database_url: str
) -> None:
    alice, _ = alice_and_bob
    attempts = [
        "update public.usage_quotas set used_count = 0",
        "update public.usage_quotas set quota_limit = 1000000",
        "update public.users set subscription_tier = 'pro'",
        "update public.users set is_admin = true",
        "update public.users set suspended_at = null",
        "update public.tier_quota_limits set quota_limit = 1000000",
        "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id)"
        " values (auth.uid(), 'p', 'enterprise', 'active', 'self-made')",
        "delete from public.usage_records",
        f"select public.assign_tier_quotas('{alice.id}', 'enterprise', true)",
    ]
    for statement in attempts:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            db.user_transaction(alice.user.principal) as conn,
        ):
            conn.execute(statement)
    with psycopg.connect(database_url) as admin:
        tier = admin.execute("select subscription_tier, is_admin from public.users where id = %s", (alice.id,))
        assert tier.fetchone() == ("free", False)
        limits = admin.execute("select count(*) from public.usage_records where user_id = %s", (alice.id,))
        assert limits.fetchone() == (1,)


def test_a_user_can_change_her_own_profile_and_nobody_elses(
    db: Database, alice_and_bob: tuple[Owner, Owner]
) -> None:
    alice, bob = alice_and_bob
    # WHEN Alice updates name and preferences without a WHERE clause
    with db.user_transaction(alice.user.principal) as conn:
        changed = conn.execute(
            "update public.users set name = 'Alice', preferences = %s", (Jsonb({"theme": "dark"}),)
        ).rowcount
    # THEN exactly her row changed
    assert changed == 1
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select id, name, preferences from public.users where id = any(%s)", ([alice.id, bob.id],)
        ).fetchall()
    profiles = {r["id"]: (r["name"], r["preferences"]) for r in rows}
    assert profiles == {alice.id: ("Alice", {"theme": "dark"}), bob.id: (None, {})}


def test_a_user_cannot_touch_another_users_conversation(db: Database, alice_and_bob: tuple[Owner, Owner]) -> None:
    alice, bob = alice_and_bob
    inserts = [
        # a message in Bob's conversation, as herself (at a position Bob's conversation already has,
        # so a refusal that comes from a unique index would tell her so) or pretending to be Bob
        (
            "insert into public.chat_messages (conversation_id, user_id, role, content, model_id, sequence_number)"
            " values (%s, %s, 'user', 'injected', 'm', 1)",
            (bob.conversation_id, alice.id),
        ),
        (
            "insert into public.chat_messages (conversation_id, user_id, role, content, model_id, sequence_number)"
            " values (%s, %s, 'user', 'injected', 'm', 99)",
            (bob.conversation_id, bob.id),
        ),
        ("insert into public.conversations (user_id, title) values (%s, 'planted')", (bob.id,)),
        (
            "insert into public.share_links (conversation_id, user_id, token, snapshot) values (%s, %s, 'x', '{}')",
            (bob.conversation_id, alice.id),
        ),
    ]
    for statement, params in inserts:
        with (
            # refused by the policy or by a (conversation, owner) foreign key, which reveal nothing; a unique
            # violation here would tell Alice that Bob's conversation has that message or an active link
            pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ForeignKeyViolation)),
            db.user_transaction(alice.user.principal) as conn,
        ):
            conn.execute(statement, params)
    # Reads, updates and deletes aimed at Bob's rows find nothing
    with db.user_transaction(alice.user.principal) as conn:
        assert (
            conn.execute("select * from public.share_links where token = %s", (bob.share_token,)).fetchall() == []
        )
        assert conn.execute("update public.share_links set revoked_at = now()").rowcount == 1  # her own only
        assert conn.execute("delete from public.conversations where id = %s", (bob.conversation_id,)).rowcount == 0
        assert (
            conn.execute("update public.chat_messages set content = 'x' where user_id = %s", (bob.id,)).rowcount
            == 0
        )
    with db.service_transaction() as conn:
        row = conn.execute(
            "select count(*) filter (where content = 'injected' or content = 'x') as bad,"
            " count(*) as messages from public.chat_messages where conversation_id = %s",
            (bob.conversation_id,),
        ).fetchone()
        share = conn.execute("select revoked_at from public.share_links where token = %s", (bob.share_token,))
        assert share.fetchone() == {"revoked_at": None}
    assert row == {"bad": 0, "messages": 2}


def test_anon_sees_no_table_but_can_open_an_active_share_link(
    db: Database, alice_and_bob: tuple[Owner, Owner]
) -> None:
    alice, _ = alice_and_bob
    # GIVEN the public (anon) role: every user table, and the webhook log, are closed
    for table in [*USER_TABLES, "processed_webhook_events"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
            conn.execute(sql.SQL("select * from {}").format(sql.Identifier("public", table)))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
        conn.execute("select id, email from auth.users")
    # the tiers are public reference data
    with db.anon_transaction() as conn:
        assert conn.execute("select count(*) as n from public.tier_quota_limits").fetchone() == {"n": 9}
    # WHEN anon opens Alice's active share link THEN it gets the snapshot
    with db.anon_transaction() as conn:
        row = conn.execute("select public.shared_conversation_snapshot(%s) as s", (alice.share_token,)).fetchone()
    assert row is not None
    snapshot = row["s"]
    assert snapshot["title"] == "alice chat"
    assert [m["content"] for m in snapshot["messages"]] == ["alice asks", "ok"]
    assert "shared_at" in snapshot
    assert "user_id" not in snapshot and str(alice.id) not in str(snapshot)
    # AND once Alice revokes it, the same token gives nothing
    with db.user_transaction(alice.user.principal) as conn:
        service.revoke_share(conn, alice.conversation_id)
    with db.anon_transaction() as conn:
        gone = conn.execute("select public.shared_conversation_snapshot(%s) as s", (alice.share_token,)).fetchone()
        unknown = conn.execute("select public.shared_conversation_snapshot('no-such-token') as s").fetchone()
    assert gone == {"s": None}
    assert unknown == {"s": None}


def test_processed_webhook_events_are_service_only(db: Database, alice_and_bob: tuple[Owner, Owner]) -> None:
    alice, _ = alice_and_bob
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.processed_webhook_events (event_id, event_type) values (%s, 'subscription.charged')",
            (f"evt_{alice.id.hex}",),
        )
    for statement in (
        "select * from public.processed_webhook_events",
        "insert into public.processed_webhook_events (event_id, event_type) values ('evt_fake', 'x')",
        "delete from public.processed_webhook_events",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            db.user_transaction(alice.user.principal) as conn,
        ):
            conn.execute(statement)
    with db.service_transaction() as conn:
        row = conn.execute(
            "select count(*) as n from public.processed_webhook_events where event_id = %s",
            (f"evt_{alice.id.hex}",),
        ).fetchone()
    assert row == {"n": 1}
