"""A client's chat id (the AI SDK's own, not a UUID) names one conversation per user, under RLS, also when
the first requests with that id arrive at once."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from oneai.db import conversations as repo
from oneai.db.connection import Database


def test_simultaneous_first_requests_with_one_client_id_make_one_conversation(
    db: Database, make_user: Any
) -> None:
    user = make_user()
    barrier = threading.Barrier(6)
    found: list[str] = []
    errors: list[BaseException] = []

    def first_request() -> None:
        try:
            barrier.wait(timeout=10)
            with db.user_transaction(user.principal) as conn:
                found.append(str(repo.conversation_for_client_id(conn, user_id=user.id, client_id="chat-1").id))
        except BaseException as exc:  # reported below
            errors.append(exc)

    # WHEN six requests name the same new chat at the same moment
    threads = [threading.Thread(target=first_request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN each got the same, single conversation
    assert errors == [] and len(found) == 6 and len(set(found)) == 1
    with db.user_transaction(user.principal) as conn:
        row = conn.execute("select count(*) as n from public.conversations where client_id = 'chat-1'").fetchone()
    assert row is not None and row["n"] == 1


def test_a_client_id_is_per_user_and_hidden_from_others(db: Database, make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    with db.user_transaction(alice.principal) as conn:
        alices = repo.conversation_for_client_id(conn, user_id=alice.id, client_id="same-id")
    with db.user_transaction(bob.principal) as conn:
        # bob cannot see alice's conversation by her client id, and the same id is a new one for him
        assert repo.get_conversation_by_client_id(conn, "same-id") is None
        bobs = repo.conversation_for_client_id(conn, user_id=bob.id, client_id="same-id")
    assert bobs.id != alices.id
    with db.user_transaction(alice.principal) as conn:
        again = repo.get_conversation_by_client_id(conn, "same-id")
    assert again is not None and again.id == alices.id


def test_client_ids_longer_than_128_characters_are_refused_by_the_table(db: Database, make_user: Any) -> None:
    user = make_user()
    with pytest.raises(psycopg.errors.CheckViolation), db.user_transaction(user.principal) as conn:
        repo.conversation_for_client_id(conn, user_id=user.id, client_id="x" * 129)
