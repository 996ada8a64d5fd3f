"""The chatbots' tables at the SQL level (issue 25), as `authenticated` with users' claims through the
product's transactions: members read a workspace's chatbots and editors write them, a non-member sees
nothing; a chatbot can be linked only to its own workspace's documents, whoever asks (the database refuses
the rest); a conversation is filed under a chatbot only by a member of its workspace; the public id is the
database's to choose."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest

from oneai.db.connection import Connection, Database
from tests.conftest import AppUser
from tests.integration.test_knowledge_store import add_document, unit_vector
from tests.integration.test_workspaces_rls import team


def add_chatbot(conn: Connection, workspace_id: UUID, name: str = "Helper") -> dict[str, Any]:
    row = conn.execute(
        "insert into public.chatbots (workspace_id, name, model) values (%s, %s, 'openai/gpt-4o-mini')"
        " returning id, public_id, status",
        (workspace_id, name),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_members_read_editors_write_non_members_see_nothing(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, viewer, stranger = make_user(), make_user(), make_user()
    workspace = team(db, owner, {viewer.id: "viewer"})
    with db.user_transaction(owner.principal) as conn:
        bot = add_chatbot(conn, workspace)
    assert bot["status"] == "draft"
    assert bot["public_id"].startswith("cb_") and len(bot["public_id"]) == 35

    with db.user_transaction(viewer.principal) as conn:
        assert conn.execute("select id from public.chatbots").fetchall() == [{"id": bot["id"]}]
        assert conn.execute("update public.chatbots set name = 'Mine' returning id").fetchall() == []
        assert conn.execute("delete from public.chatbots returning id").fetchall() == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(viewer.principal) as conn:
        add_chatbot(conn, workspace)

    with db.user_transaction(stranger.principal) as conn:
        assert conn.execute("select id from public.chatbots").fetchall() == []
        assert conn.execute("select * from public.chatbot_documents").fetchall() == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(stranger.principal) as conn:
        add_chatbot(conn, workspace)


def test_a_client_cannot_choose_the_public_id(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner = make_user()
    workspace = team(db, owner)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(owner.principal) as conn:
        conn.execute(
            "insert into public.chatbots (workspace_id, name, model, public_id)"
            " values (%s, 'Bot', 'm', 'cb_00000000000000000000000000000000')",
            (workspace,),
        )
    with db.user_transaction(owner.principal) as conn:
        bot = add_chatbot(conn, workspace)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(owner.principal) as conn:
        conn.execute("update public.chatbots set public_id = 'cb_' || repeat('a', 32) where id = %s", (bot["id"],))


def test_a_document_of_another_workspace_can_never_be_linked(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    owner = make_user()
    ours, theirs = team(db, owner, name="Ours"), team(db, owner, name="Theirs")
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        our_document, _ = add_document(conn, ours, [("ours", unit_vector(random.Random(1)))])
        their_document, _ = add_document(conn, theirs, [("theirs", unit_vector(random.Random(2)))])
    with db.user_transaction(owner.principal) as conn:
        bot = add_chatbot(conn, ours)
        conn.execute(
            "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
            (bot["id"], our_document, ours),
        )
    # an editor of both workspaces, naming either workspace: refused by the foreign keys
    for claimed in (ours, theirs):
        with pytest.raises(psycopg.errors.ForeignKeyViolation), db.user_transaction(owner.principal) as conn:
            conn.execute(
                "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
                (bot["id"], their_document, claimed),
            )
    # and by the service too: the rule is the schema's, not the policies'
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.service_transaction() as conn:
        conn.execute(
            "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
            (bot["id"], their_document, theirs),
        )
    # a document deleted is unlinked
    with db.service_transaction() as conn:
        conn.execute("delete from public.documents where id = %s", (our_document,))
        assert (
            conn.execute("select * from public.chatbot_documents where chatbot_id = %s", (bot["id"],)).fetchall()
            == []
        )


def test_a_conversation_is_filed_under_a_chatbot_only_by_a_member(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, viewer, stranger = make_user(), make_user(), make_user()
    workspace = team(db, owner, {viewer.id: "viewer"})
    other = team(db, owner, name="Other")
    with db.user_transaction(owner.principal) as conn:
        bot = add_chatbot(conn, workspace)

    def file_conversation(user: AppUser, workspace_id: UUID) -> None:
        with db.user_transaction(user.principal) as conn:
            conn.execute(
                "insert into public.conversations (user_id, workspace_id, chatbot_id) values (%s, %s, %s)",
                (user.id, workspace_id, bot["id"]),
            )

    file_conversation(viewer, workspace)  # a viewer chats with the workspace's chatbots
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        file_conversation(stranger, workspace)
    # the chatbot belongs to its own workspace only
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        file_conversation(owner, other)
    # a member who leaves cannot move a conversation into the workspace again
    with db.user_transaction(viewer.principal) as conn:
        conversation = conn.execute(
            "select id from public.conversations where chatbot_id = %s", (bot["id"],)
        ).fetchone()
        assert conversation is not None
    with db.service_transaction() as conn:
        conn.execute(
            "delete from public.workspace_members where workspace_id = %s and user_id = %s", (workspace, viewer.id)
        )
        conn.execute("update public.conversations set workspace_id = null, chatbot_id = null where id = %s",
                     (conversation["id"],))  # fmt: skip
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(viewer.principal) as conn:
        conn.execute(
            "update public.conversations set workspace_id = %s, chatbot_id = %s where id = %s",
            (workspace, bot["id"], conversation["id"]),
        )


def test_a_purged_chatbot_leaves_kept_conversations_with_the_workspace(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    workspace = team(db, owner)
    with db.user_transaction(owner.principal) as conn:
        bot = add_chatbot(conn, workspace)
        conversation = conn.execute(
            "insert into public.conversations (user_id, workspace_id, chatbot_id) values (%s, %s, %s) returning id",
            (owner.id, workspace, bot["id"]),
        ).fetchone()
        assert conversation is not None
    with db.service_transaction() as conn:
        conn.execute("delete from public.chatbots where id = %s", (bot["id"],))
        kept = conn.execute(
            "select workspace_id, chatbot_id from public.conversations where id = %s", (conversation["id"],)
        ).fetchone()
    assert kept == {"workspace_id": workspace, "chatbot_id": None}
