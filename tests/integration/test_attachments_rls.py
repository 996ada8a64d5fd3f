"""Attachments under Row Level Security: a user transaction reads and changes only the caller's rows,
cannot hang an attachment on someone else's conversation, and anon reaches a file only through an active
share link whose snapshot lists it."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from oneai.attachments.models import object_key
from oneai.conversations import service
from oneai.conversations.models import ConversationCreate
from oneai.db import attachments as repo
from oneai.db.connection import Database

pytestmark = pytest.mark.integration


def new_attachment(db: Database, user: Any, *, status: str = "uploaded") -> uuid.UUID:
    attachment_id = uuid.uuid4()
    with db.user_transaction(user.principal) as conn:
        repo.insert_attachment(
            conn,
            attachment_id=attachment_id,
            user_id=user.id,
            filename="p.png",
            media_type="image/png",
            size=10,
            s3_key=object_key(user.id, attachment_id),
            status=status,
        )
    return attachment_id


def test_a_user_sees_and_changes_only_their_own_attachments(db: Database, make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    mine = new_attachment(db, alice)
    with db.user_transaction(bob.principal) as conn:
        assert repo.get_attachment(conn, mine) is None
        assert repo.get_attachments(conn, [mine]) == []
        assert repo.mark_uploaded(conn, mine, size=1) is None
        conversation = service.create_conversation(conn, bob.id, ConversationCreate(title="bob's"))
        assert repo.attach_to_message(conn, [mine], conversation_id=conversation.id, message_id=uuid.uuid4()) == 0
        repo.delete_attachment(conn, mine)
    with db.user_transaction(alice.principal) as conn:
        row = repo.get_attachment(conn, mine)
        assert row is not None and row.size == 10 and row.conversation_id is None


def test_nobody_can_write_an_attachment_as_another_user_or_onto_another_users_conversation(
    db: Database, make_user: Any
) -> None:
    alice, bob = make_user(), make_user()
    with db.user_transaction(bob.principal) as conn:
        bobs_conversation = service.create_conversation(conn, bob.id, ConversationCreate(title="bob's"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(alice.principal) as conn:
        repo.insert_attachment(
            conn,
            attachment_id=uuid.uuid4(),
            user_id=bob.id,
            filename="p.png",
            media_type="image/png",
            size=1,
            s3_key=f"users/{bob.id}/x",
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(alice.principal) as conn:
        repo.insert_attachment(
            conn,
            attachment_id=uuid.uuid4(),
            user_id=alice.id,
            filename="p.png",
            media_type="image/png",
            size=1,
            s3_key=f"users/{alice.id}/y",
            conversation_id=bobs_conversation.id,
        )


def test_anon_reaches_a_shared_attachment_only_while_the_link_is_active_and_lists_it(
    db: Database, make_user: Any, database_url: str
) -> None:
    alice = make_user()
    listed, unlisted = new_attachment(db, alice), new_attachment(db, alice)
    with db.user_transaction(alice.principal) as conn:
        conversation = service.create_conversation(conn, alice.id, ConversationCreate(title="pics"))
        for attachment_id in (listed, unlisted):
            conn.execute(
                "update public.attachments set conversation_id = %s where id = %s",
                (conversation.id, attachment_id),
            )
    token = f"tok-{uuid.uuid4().hex}"
    snapshot = {"title": "pics", "messages": [{"attachments": [{"id": str(listed)}]}]}
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "insert into public.share_links (conversation_id, user_id, token, snapshot) values (%s, %s, %s, %s)",
            (conversation.id, alice.id, token, Jsonb(snapshot)),
        )
    with db.anon_transaction() as conn:
        found = repo.shared_attachment(conn, token, listed)
        assert found is not None and found.id == listed
        assert repo.shared_attachment(conn, token, unlisted) is None
        assert repo.shared_attachment(conn, "wrong-token", listed) is None
        # anon cannot read the table itself
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from public.attachments")
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("update public.share_links set revoked_at = now() where token = %s", (token,))
    with db.anon_transaction() as conn:
        assert repo.shared_attachment(conn, token, listed) is None
