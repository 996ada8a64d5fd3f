"""The chat turn's one-round-trip calls (`oneai_private.prepare_chat_turn` / `finish_chat_turn` through
`Database.user_call`): the same rules, errors and Row Level Security as the statement-by-statement turn,
the request's checks first, nothing written when they refuse, the rate token kept when the turn's own
rules refuse, and a dropped pooled connection reopened."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from oneai.auth import Principal
from oneai.chat.requests import ChatTurn
from oneai.chat.turn import ReplyOutcome, finish_turn, prepare_turn
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)
from oneai.ratelimit import RateCheck, RatePolicy
from tests.integration.test_connection import terminate, unknown_principal

MODEL = "anthropic/claude-3.5-haiku"


def send(content: str = "Hello", **fields: Any) -> ChatTurn:
    values: dict[str, Any] = {
        "conversation_id": None,
        "model": MODEL,
        "action": "send",
        "content": content,
        "message_id": None,
    }
    return ChatTurn(**(values | fields))


def rated(principal: Principal, burst: int = 1) -> Principal:
    check = RateCheck(RatePolicy("chat", 1, burst))  # type: ignore[arg-type]
    return dataclasses.replace(principal, rate_check=check)


def outcome(text: str = "Hi there") -> ReplyOutcome:
    return ReplyOutcome(
        text=text,
        status="complete",
        served_model=MODEL,
        generation_id="gen-1",
        prompt_tokens=7,
        completion_tokens=3,
        cost=Decimal("0.0001"),
    )


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def test_a_turn_is_prepared_and_finished_with_its_history_usage_and_quota(db: Database, make_user: Any) -> None:
    user = make_user()
    first = prepare_turn(db, user.principal, send("Hello"))
    finished = finish_turn(db, first, outcome("Hi there"))
    # WHEN the next message goes into the same conversation
    second = prepare_turn(db, user.principal, send("And then?", conversation_id=first.conversation.id))
    # THEN the model sees the whole branch, oldest first, and the quota counts both turns
    assert [(m.role, m.content) for m in second.history] == [
        ("user", "Hello"),
        ("assistant", "Hi there"),
        ("user", "And then?"),
    ]
    assert second.parent.sequence_number == 3 and second.user_message is not None
    assert second.reservation.used == 2 and second.offered.quota_key == "small_messages"
    assert finished.message.id == first.reply_id and finished.message.tokens_used == 10
    assert finished.quota is not None and finished.quota.used == 1


def test_no_model_named_is_the_callers_preferred_model_or_the_tiers_default(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    assert prepare_turn(db, user.principal, send(model=None)).turn.model_id == "openai/gpt-4o-mini"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'update public.users set preferences = \'{"default_model": "google/gemini-2.5-flash"}\' where id = %s',
            (user.id,),
        )
    assert prepare_turn(db, user.principal, send(model=None)).turn.model_id == "google/gemini-2.5-flash"
    # a preferred model the message does not fit is 413, and nothing is written
    before = count(database_url, "select count(*) from public.chat_messages where user_id = %s", user.id)
    with pytest.raises(PayloadTooLargeError):
        prepare_turn(db, user.principal, send(model=None), too_long_for=frozenset({"google/gemini-2.5-flash"}))
    assert count(database_url, "select count(*) from public.chat_messages where user_id = %s", user.id) == before


def test_the_models_rules_are_the_same_errors(db: Database, make_user: Any) -> None:
    user = make_user()
    with pytest.raises(ValidationError) as unknown:
        prepare_turn(db, user.principal, send(model="nobody/model"))
    assert unknown.value.details["errors"][0]["field"] == "model"
    with pytest.raises(ForbiddenError) as outside:
        prepare_turn(db, user.principal, send(model="anthropic/claude-opus-4"))
    assert outside.value.details == {
        "model": "anthropic/claude-opus-4",
        "tier": "free",
        "tiers": ["enterprise"],
    }


def test_another_users_conversation_is_not_found_even_to_create_under_its_id(
    db: Database, make_user: Any, database_url: str
) -> None:
    alice, bob = make_user(), make_user()
    alices = prepare_turn(db, alice.principal, send("mine")).conversation
    with pytest.raises(NotFoundError):
        prepare_turn(db, bob.principal, send("yours?", conversation_id=alices.id))
    with pytest.raises(NotFoundError):
        prepare_turn(
            db, bob.principal, send("yours?", conversation_id=alices.id, create_missing_conversation=True)
        )
    with pytest.raises(NotFoundError):
        prepare_turn(db, bob.principal, send("none", client_chat_id="never-seen"))
    # nothing of bob's refused turns was written, and nothing was counted
    assert count(database_url, "select count(*) from public.chat_messages where user_id = %s", bob.id) == 0
    assert count(database_url, "select count(*) from public.conversations where user_id = %s", bob.id) == 0
    assert (
        count(
            database_url,
            "select used_count from public.usage_quotas where user_id = %s and quota_key = 'small_messages'",
            bob.id,
        )
        == 0
    )
    # a free id is created under it, and a client chat id makes one conversation on first use
    free_id = uuid.uuid4()
    created = prepare_turn(
        db, bob.principal, send("new", conversation_id=free_id, create_missing_conversation=True)
    )
    assert created.conversation.id == free_id
    by_client = prepare_turn(
        db, bob.principal, send("a", client_chat_id="chat-9", create_missing_conversation=True)
    )
    again = prepare_turn(db, bob.principal, send("b", client_chat_id="chat-9"))
    assert again.conversation.id == by_client.conversation.id and again.parent.sequence_number == 2


def test_edit_and_regenerate_keep_their_rules(db: Database, make_user: Any) -> None:
    user = make_user()
    first = prepare_turn(db, user.principal, send("Hello"))
    conversation_id = first.conversation.id
    regenerate_reply = ChatTurn(
        conversation_id=conversation_id, model=MODEL, action="regenerate", content=None, message_id=None
    )
    # the unanswered user message at the tip is answered anew (a client's retry)
    retried = prepare_turn(db, user.principal, regenerate_reply)
    assert retried.replaces is None and retried.parent.id == first.parent.id
    finished = finish_turn(db, retried, outcome("Hi"))
    # the reply is regenerated as a new revision, answering the same message
    again = prepare_turn(db, user.principal, regenerate_reply)
    assert again.replaces is not None and again.replaces.id == finished.message.id
    regenerated = finish_turn(db, again, outcome("Hello again"))
    assert regenerated.message.revision_number == 1 and regenerated.message.revision_type == "regeneration"
    # an older revision cannot be regenerated
    with pytest.raises(ConflictError):
        prepare_turn(db, user.principal, regenerate_reply.model_copy(update={"message_id": finished.message.id}))
    # editing an assistant message is refused with the same details
    with pytest.raises(ValidationError) as assistant_edit:
        prepare_turn(
            db,
            user.principal,
            ChatTurn(
                conversation_id=conversation_id,
                model=MODEL,
                action="edit",
                content="x",
                message_id=regenerated.message.id,
            ),
        )
    assert assistant_edit.value.details == {
        "errors": [{"field": "message_id", "message": "must be a user message", "type": "message_role"}]
    }
    # an edit of the first message starts a new branch from it
    edited = prepare_turn(
        db,
        user.principal,
        ChatTurn(
            conversation_id=conversation_id, model=MODEL, action="edit", content="Hi!", message_id=first.parent.id
        ),
    )
    assert edited.user_message is not None and edited.user_message.revision_type == "user_edit"
    assert [m.content for m in edited.history] == ["Hi!"]
    with pytest.raises(NotFoundError):
        prepare_turn(
            db,
            user.principal,
            ChatTurn(
                conversation_id=conversation_id, model=MODEL, action="edit", content="?", message_id=uuid.uuid4()
            ),
        )
    # a reply to a message that left the branch meanwhile is not saved
    with pytest.raises(ConflictError):
        finish_turn(db, first, outcome("too late"))


def test_quota_refusal_writes_nothing_but_keeps_the_rate_token(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = quota_limit where user_id = %s and quota_key = 'small_messages'",
            (user.id,),
        )
    principal = rated(user.principal, burst=1)
    with pytest.raises(QuotaExceededError) as exceeded:
        prepare_turn(db, principal, send("Hello"))
    assert exceeded.value.details["quota_key"] == "small_messages" and exceeded.value.details["tier"] == "free"
    assert count(database_url, "select count(*) from public.conversations where user_id = %s", user.id) == 0
    assert principal.rate_check is not None and principal.rate_check.outcome is not None
    # the burst of one was spent by the refused turn: the next request is rate limited, writing nothing
    limited = rated(user.principal, burst=1)
    with pytest.raises(RateLimitedError):
        prepare_turn(db, limited, send("Hello"))
    assert limited.rate_check is not None and limited.rate_check.outcome is not None
    assert not limited.rate_check.outcome.admitted


def test_unknown_and_suspended_users_are_refused_before_anything_is_written(
    db: Database, make_user: Any, database_url: str
) -> None:
    with pytest.raises(UnauthorizedError):
        prepare_turn(db, unknown_principal(), send())
    suspended = make_user(suspended=True)
    with pytest.raises(ForbiddenError):
        prepare_turn(db, suspended.principal, send())
    assert count(database_url, "select count(*) from public.conversations where user_id = %s", suspended.id) == 0


def test_a_dropped_pooled_connection_is_reopened_for_the_call(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    prepare_turn(db, user.principal, send("warm"))
    terminate(database_url, db.backend_pid())
    prepared = prepare_turn(db, user.principal, send("after the drop"))
    assert prepared.user_message is not None and prepared.user_message.content == "after the drop"


def test_a_turn_held_up_past_the_statement_timeout_is_a_503_and_writes_nothing(
    make_user: Any, database_url: str
) -> None:
    user = make_user()
    with override_settings(database_url=SecretStr(database_url), db_statement_timeout_ms=300) as settings:
        db = Database(settings)
        try:
            conversation = prepare_turn(db, user.principal, send("first")).conversation
            # GIVEN another transaction holding the conversation's row
            with psycopg.connect(database_url) as other:
                other.execute("select 1 from public.conversations where id = %s for update", (conversation.id,))
                # WHEN a turn must lock it THEN it gives up at the statement timeout: 503, not retried
                with pytest.raises(UnavailableError):
                    prepare_turn(db, user.principal, send("second", conversation_id=conversation.id))
                other.rollback()
            # AND nothing of it stayed, and the next turn works on a fresh connection
            assert (
                count(database_url, "select count(*) from public.chat_messages where user_id = %s", user.id) == 1
            )
            after = prepare_turn(db, user.principal, send("third", conversation_id=conversation.id))
            assert [m.content for m in after.history] == ["first", "third"]
        finally:
            db.close()


def test_message_text_travels_in_the_call_exactly_as_written(db: Database, make_user: Any) -> None:
    user = make_user()
    text = "It's a \"test\" \\ with ünïcödé 🚀, $$dollar$$ quotes and '); drop table public.users; --"
    prepared = prepare_turn(db, user.principal, send(text))
    finished = finish_turn(db, prepared, outcome(text[::-1]))
    assert prepared.user_message is not None and prepared.user_message.content == text
    assert finished.message.content == text[::-1]
    with db.user_transaction(user.principal) as conn:
        rows = conn.execute(
            "select content from public.chat_messages where conversation_id = %s order by sequence_number",
            (prepared.conversation.id,),
        ).fetchall()
    assert [r["content"] for r in rows] == [text, text[::-1]]
