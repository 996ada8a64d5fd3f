"""The plan's revision example, branch switching and revision lists, through the services."""

from __future__ import annotations

from typing import Any

import pytest

from oneai.conversations import service
from oneai.conversations.models import ConversationCreate, NewMessage
from oneai.db.connection import Database
from oneai.errors import ConflictError, NotFoundError, ValidationError
from oneai.pagination import PageRequest

MODEL = "openai/gpt-4o-mini"


def user_msg(text: str) -> NewMessage:
    return NewMessage(role="user", content=text, model_id=MODEL)


def reply(text: str) -> NewMessage:
    return NewMessage(role="assistant", content=text, model_id=MODEL, tokens_used=7)


def branch(db: Database, user: Any, conversation_id: Any) -> list[tuple[int, int, str, str]]:
    with db.user_transaction(user.principal) as conn:
        current = service.get_conversation(conn, conversation_id)
    return [(m.sequence_number, m.revision_number, m.role, m.content) for m in current.messages]


@pytest.fixture
def conversation(db: Database, make_user: Any) -> Any:
    user = make_user()
    with db.user_transaction(user.principal) as conn:
        created = service.create_conversation(conn, user.id, ConversationCreate(title="Plan example"))
    return user, created.id


def test_the_plans_revision_example_gives_the_expected_branch(db: Database, conversation: Any) -> None:
    user, cid = conversation
    # GIVEN a first exchange: user seq 1 rev 0, reply seq 2 rev 0
    with db.user_transaction(user.principal) as conn:
        first = service.append_message(conn, user.id, cid, user_msg("Hello"))
        service.add_reply(conn, user.id, cid, first.id, reply("Hi!"))
    # WHEN the user edits message 1 and gets a new reply, then sends seq 3 and gets seq 4
    with db.user_transaction(user.principal) as conn:
        edited = service.edit_message(conn, user.id, cid, first.id, content="Hello there", model_id=MODEL)
        new_reply = service.add_reply(conn, user.id, cid, edited.id, reply("Hi again!"))
        third = service.append_message(conn, user.id, cid, user_msg("How are you?"))
        service.add_reply(conn, user.id, cid, third.id, reply("Fine."))
    # THEN the current branch is seq 1 rev 1, seq 2 rev 1, seq 3 rev 0, seq 4 rev 0
    assert branch(db, user, cid) == [
        (1, 1, "user", "Hello there"),
        (2, 1, "assistant", "Hi again!"),
        (3, 0, "user", "How are you?"),
        (4, 0, "assistant", "Fine."),
    ]
    assert edited.revision_type == "user_edit" and edited.original_message_id == first.id
    assert new_reply.revision_type == "regeneration" and new_reply.parent_message_id == edited.id
    # AND each position lists its revisions in order
    with db.user_transaction(user.principal) as conn:
        position_1 = service.list_revisions(conn, cid, edited.id, PageRequest()).items
        position_2 = service.list_revisions(conn, cid, new_reply.id, PageRequest()).items
    assert [(m.revision_number, m.content, m.is_latest) for m in position_1] == [
        (0, "Hello", False),
        (1, "Hello there", True),
    ]
    assert [(m.revision_number, m.content, m.is_latest) for m in position_2] == [
        (0, "Hi!", False),
        (1, "Hi again!", True),
    ]


def test_activating_an_older_revision_restores_its_branch_with_later_messages(
    db: Database, conversation: Any
) -> None:
    user, cid = conversation
    # GIVEN an original branch of four messages, and an edit of message 1 with its own reply
    with db.user_transaction(user.principal) as conn:
        m1 = service.append_message(conn, user.id, cid, user_msg("one"))
        m2 = service.add_reply(conn, user.id, cid, m1.id, reply("two"))
        m3 = service.append_message(conn, user.id, cid, user_msg("three"))
        service.add_reply(conn, user.id, cid, m3.id, reply("four"))
        edit = service.edit_message(conn, user.id, cid, m1.id, content="uno", model_id=MODEL)
        service.add_reply(conn, user.id, cid, edit.id, reply("dos"))
    assert [c for *_, c in branch(db, user, cid)] == ["uno", "dos"]
    # WHEN the original first message is activated
    with db.user_transaction(user.principal) as conn:
        restored = service.activate_revision(conn, cid, m1.id)
    # THEN its whole branch is current again, later messages included
    assert [m.content for m in restored.messages] == ["one", "two", "three", "four"]
    # AND activating a revision deep in the other branch brings its ancestors back too
    with db.user_transaction(user.principal) as conn:
        other = service.list_revisions(conn, cid, m2.id, PageRequest()).items
        dos = next(m for m in other if m.content == "dos")
        again = service.activate_revision(conn, cid, dos.id)
    assert [m.content for m in again.messages] == ["uno", "dos"]


def test_regenerate_keeps_the_prompt_and_the_most_recent_child_wins_on_restore(
    db: Database, conversation: Any
) -> None:
    user, cid = conversation
    with db.user_transaction(user.principal) as conn:
        m1 = service.append_message(conn, user.id, cid, user_msg("q"))
        a1 = service.add_reply(conn, user.id, cid, m1.id, reply("a-first"))
        a2 = service.regenerate_message(conn, user.id, cid, a1.id, reply("a-second"))
        follow = service.append_message(conn, user.id, cid, user_msg("more"))
        service.edit_message(conn, user.id, cid, m1.id, content="q2", model_id=MODEL)
    assert (a2.sequence_number, a2.revision_number, a2.parent_message_id) == (2, 1, m1.id)
    # WHEN the first question is restored, the regenerated answer (current most recently) comes back
    with db.user_transaction(user.principal) as conn:
        restored = service.activate_revision(conn, cid, m1.id)
    assert [m.content for m in restored.messages] == ["q", "a-second", "more"]
    assert restored.messages[2].id == follow.id


def test_only_the_latest_revision_can_be_edited_or_regenerated(db: Database, conversation: Any) -> None:
    user, cid = conversation
    with db.user_transaction(user.principal) as conn:
        m1 = service.append_message(conn, user.id, cid, user_msg("q"))
        a1 = service.add_reply(conn, user.id, cid, m1.id, reply("a"))
        service.edit_message(conn, user.id, cid, m1.id, content="q'", model_id=MODEL)
    with pytest.raises(ConflictError), db.user_transaction(user.principal) as conn:
        service.edit_message(conn, user.id, cid, m1.id, content="again", model_id=MODEL)
    with pytest.raises(ConflictError), db.user_transaction(user.principal) as conn:
        service.regenerate_message(conn, user.id, cid, a1.id, reply("x"))
    # A reply to a message that left the branch would fork silently: refuse it.
    with pytest.raises(ConflictError), db.user_transaction(user.principal) as conn:
        service.add_reply(conn, user.id, cid, m1.id, reply("late"))
    with pytest.raises(ValidationError), db.user_transaction(user.principal) as conn:
        current = service.get_conversation(conn, cid)
        service.edit_message(conn, user.id, cid, current.messages[0].id, content="x", model_id=MODEL)
        service.regenerate_message(conn, user.id, cid, current.messages[0].id, reply("x"))
    # Nothing half-written: the branch is the edit alone.
    assert branch(db, user, cid) == [(1, 1, "user", "q'")]


def test_another_users_conversation_is_not_found_for_every_service(
    db: Database, conversation: Any, make_user: Any
) -> None:
    owner, cid = conversation
    with db.user_transaction(owner.principal) as conn:
        m1 = service.append_message(conn, owner.id, cid, user_msg("mine"))
    stranger = make_user()
    attempts = [
        lambda c: service.get_conversation(c, cid),
        lambda c: service.append_message(c, stranger.id, cid, user_msg("x")),
        lambda c: service.edit_message(c, stranger.id, cid, m1.id, content="x", model_id=MODEL),
        lambda c: service.list_revisions(c, cid, m1.id, PageRequest()),
        lambda c: service.activate_revision(c, cid, m1.id),
        lambda c: service.delete_conversation(c, cid),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError), db.user_transaction(stranger.principal) as conn:
            attempt(conn)
    assert branch(db, owner, cid) == [(1, 0, "user", "mine")]
