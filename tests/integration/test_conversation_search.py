"""Members' own conversation search (issue 28 item 2): `GET /conversations?q` finds a conversation by a word
of its current messages as well as by its title, says where it matched, and never finds another user's."""

from __future__ import annotations

from collections.abc import Callable

from oneai.conversations import service
from oneai.conversations.models import ConversationCreate, NewMessage
from oneai.db.connection import Database
from oneai.pagination import PageRequest
from tests.conftest import AppUser

MODEL = "openai/gpt-4o-mini"


def conversation(db: Database, user: AppUser, title: str, *texts: str) -> tuple[str, list[str]]:
    with db.user_transaction(user.principal) as conn:
        created = service.create_conversation(conn, user.id, ConversationCreate(title=title))
        ids = [
            str(
                service.append_message(
                    conn, user.id, created.id, NewMessage(role="user", content=t, model_id=MODEL)
                ).id
            )
            for t in texts
        ]
    return str(created.id), ids


def search(db: Database, user: AppUser, q: str | None, limit: int = 20, cursor: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    with db.user_transaction(user.principal) as conn:
        page = service.list_conversations(conn, user.id, query=q, page=PageRequest(limit=limit, cursor=cursor))
    return [item.model_dump(mode="json") for item in page.items]


def test_a_word_of_a_message_finds_its_conversation_and_says_where(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, bob = make_user(), make_user()
    trip, (first, _) = conversation(db, alice, "Trip to Goa", "Where can I eat biryani?", "And the beaches?")
    biryani_title, _ = conversation(db, alice, "Biryani recipes", "What spices do I need?")
    conversation(db, bob, "Food", "biryani near me")

    found = search(db, alice, "biryani")
    assert [c["id"] for c in found] == [biryani_title, trip]  # newest activity first; not bob's
    assert found[0]["match"] == {"field": "title", "message_id": None, "snippet": None}
    assert found[1]["match"]["field"] == "message" and found[1]["match"]["message_id"] == first
    assert "biryani" in found[1]["match"]["snippet"]

    assert [c["id"] for c in search(db, alice, "goa")] == [trip]  # a part of the title, as before
    assert search(db, alice, "goa")[0]["match"]["field"] == "title"
    assert search(db, alice, "zanzibar") == []
    assert search(db, alice, '"unterminated & | !! (') == []
    assert all(c["match"] is None for c in search(db, alice, None))
    # pages follow the cursor
    first_page = search(db, alice, "biryani", limit=1)
    assert [c["id"] for c in first_page] == [biryani_title]


def test_a_retired_revision_is_not_found(db: Database, make_user: Callable[..., AppUser]) -> None:
    alice = make_user()
    cid, (message,) = conversation(db, alice, "Plans", "Visit Hampi")
    with db.user_transaction(alice.principal) as conn:
        from uuid import UUID

        service.edit_message(conn, alice.id, UUID(cid), UUID(message), content="Visit Mysore", model_id=MODEL)
    assert search(db, alice, "hampi") == []
    assert [c["id"] for c in search(db, alice, "mysore")] == [cid]
