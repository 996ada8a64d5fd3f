"""Resumable replies in PostgreSQL (`oneai.db.reply_streams`, `oneai.chat.resumable`), with two `Database`
objects standing for two Lambda containers: one generating, one answering the resume GET or the stop."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import psycopg
import pytest

from oneai.chat import parts, resumable
from oneai.chat.resumable import fold_parts
from oneai.db import conversations as conversation_rows
from oneai.db import reply_streams
from oneai.db.connection import Database
from oneai.errors import NotFoundError
from tests.conftest import AppUser
from tests.sse_support import events_of

REPLY: list[dict[str, Any]] = [
    {"type": "start", "messageId": "m"},
    {"type": "text-start", "id": "t0"},
    *({"type": "text-delta", "id": "t0", "delta": f"w{i} "} for i in range(12)),
    {"type": "text-end", "id": "t0"},
    {"type": "finish"},
]


@pytest.fixture
def other_container(settings_with_db: Any) -> Any:
    database = Database(settings_with_db)
    yield database
    database.close()


def conversation_of(db: Database, user: AppUser, client_id: str = "chat-abc") -> uuid.UUID:
    with db.user_transaction(user.principal) as conn:
        return conversation_rows.conversation_for_client_id(conn, user_id=user.id, client_id=client_id).id


def flush(
    db: Database, user: AppUser, reply_id: uuid.UUID, conversation_id: uuid.UUID, *, seq: int, batch: Any
) -> bool:
    with db.user_transaction(user.principal) as conn:
        return reply_streams.flush(
            conn,
            reply_id=reply_id,
            conversation_id=conversation_id,
            seq=seq,
            parts_json=None if batch is None else json.dumps(batch),
        )


def test_a_stop_asked_on_another_container_is_read_by_the_generators_next_flush(
    db: Database, other_container: Database, make_user: Any
) -> None:
    user = make_user()
    conversation_id, reply_id = conversation_of(db, user), uuid.uuid4()
    # GIVEN a reply whose first batch was written by the generating container
    assert flush(db, user, reply_id, conversation_id, seq=1, batch=REPLY[:3]) is False
    # WHEN the stop request lands on another container, naming the conversation by the AI SDK chat id
    assert resumable.request_stop(other_container, user.principal, "chat-abc") == 1
    # THEN the generator's next flush, a heartbeat without parts, reads the stop
    assert flush(db, user, reply_id, conversation_id, seq=1, batch=None) is True
    # AND a stop for a conversation with nothing being generated is fine (nothing asked)
    other = conversation_of(db, user, "chat-quiet")
    assert resumable.request_stop(other_container, user.principal, str(other)) == 0


def test_resume_and_stop_of_someone_elses_conversation_are_not_found(
    db: Database, other_container: Database, make_user: Any
) -> None:
    alice, bob = make_user(), make_user()
    conversation_id, reply_id = conversation_of(db, alice), uuid.uuid4()
    flush(db, alice, reply_id, conversation_id, seq=1, batch=REPLY[:3])
    for chat_id in (str(conversation_id), "chat-abc"):
        with pytest.raises(NotFoundError):
            resumable.active_reply(other_container, bob.principal, chat_id)
        with pytest.raises(NotFoundError):
            resumable.request_stop(other_container, bob.principal, chat_id)
    # AND under RLS bob sees none of the reply's rows, and cannot set its flag directly
    with other_container.user_transaction(bob.principal) as conn:
        assert reply_streams.poll(conn, reply_id, 0) is None
        assert reply_streams.request_stop(conn, conversation_id) == 0
    assert flush(db, alice, reply_id, conversation_id, seq=1, batch=None) is False


def test_a_follower_on_another_container_replays_follows_and_finishes_the_same_message(
    db: Database, other_container: Database, make_user: Any
) -> None:
    user = make_user()
    conversation_id, reply_id = conversation_of(db, user), uuid.uuid4()
    flush(db, user, reply_id, conversation_id, seq=1, batch=REPLY[:4])
    assert resumable.active_reply(other_container, user.principal, "chat-abc") == reply_id
    followed: list[bytes] = []
    done = threading.Event()

    def generate() -> None:
        # the rest in batches while the follower polls, the last batches right before the fold
        for seq, start in enumerate(range(4, len(REPLY), 3), start=2):
            flush(db, user, reply_id, conversation_id, seq=seq, batch=REPLY[start : start + 3])
            if seq < 4:
                done.wait(0.15)
        with db.user_transaction(user.principal) as conn:
            reply_streams.fold(
                conn,
                reply_id=reply_id,
                conversation_id=conversation_id,
                status="complete",
                folded=fold_parts(REPLY),
            )

    async def follow() -> None:
        async for chunk in resumable.follow(other_container, user.principal, reply_id, interval=0.1):
            followed.append(chunk)

    writer = threading.Thread(target=generate)
    writer.start()
    asyncio.run(follow())
    writer.join(timeout=10)
    # THEN the follower's stream is the whole reply, from start to finish and [DONE], with no part twice
    events = [e for e in events_of(b"".join(followed)) if isinstance(e, dict)]
    assert followed[-1] == parts.DONE
    assert [e["type"] for e in events if e["type"] != "text-delta"] == [
        "start",
        "text-start",
        "text-end",
        "finish",
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "text-delta") == "".join(
        p["delta"] for p in REPLY if p["type"] == "text-delta"
    )
    # AND the batches are gone, the state is final, and nothing is being generated any more
    with db.user_transaction(user.principal) as conn:
        polled = reply_streams.poll(conn, reply_id, 0)
    assert polled is not None and polled.status == "complete" and polled.batches == []
    assert resumable.active_reply(other_container, user.principal, "chat-abc") is None


def test_a_reply_whose_generator_stopped_beating_is_not_resumed_and_its_followers_end(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    conversation_id, reply_id = conversation_of(db, user), uuid.uuid4()
    flush(db, user, reply_id, conversation_id, seq=1, batch=REPLY[:3])
    # GIVEN the generating container died: no flush for longer than the staleness limit
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "update public.reply_streams set heartbeat_at = now() - make_interval(secs => %s) where id = %s",
            (reply_streams.STALE_AFTER_SECONDS + 1, reply_id),
        )
    # THEN the resume address has nothing to give
    assert resumable.active_reply(db, user.principal, str(conversation_id)) is None

    # AND a follower that was already reading ends with an error part and [DONE] instead of waiting forever
    async def follow() -> list[bytes]:
        return [c async for c in resumable.follow(db, user.principal, reply_id, interval=0.05)]

    followed = asyncio.run(follow())
    assert followed[-2:] == [parts.error(resumable.INTERRUPTED_TEXT), parts.DONE]
    assert followed[0] == parts.encode(REPLY[0])
