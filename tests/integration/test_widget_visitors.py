"""The widget's visitor side in a real PostgreSQL (issue 27): who may read a chatbot's visitor
conversations (the workspace's editors; not viewers, not other users, not anonymous callers), that the
inbox's full-text search works on them, and the public routes' rate limits per source address and per
visitor, through the service as the routes call it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from oneai.config import Settings
from oneai.db.connection import Database
from oneai.errors import RateLimitedError
from oneai.ratelimit import new_source_check
from oneai.widget import service
from oneai.widget.models import SessionRequest
from tests.conftest import AppUser
from tests.integration.test_workspaces_rls import team
from tests.widget_support import WidgetChatbot, new_visitor_id, seed_conversation

SECRET = "integration-widget-secret"


def tight(**limits: int) -> Settings:
    """Settings with these limits (by field name: the fields' aliases are the environment's names)."""
    return Settings(widget_session_secret=SECRET).model_copy(update=limits)


def chatbot_in(db: Database, workspace_id: uuid.UUID) -> WidgetChatbot:
    with db.service_transaction() as conn:
        row = conn.execute(
            "insert into public.chatbots (workspace_id, name, model, status) values (%s, 'Help', 'openai/gpt-4o-mini',"
            " 'active') returning id, public_id",
            (workspace_id,),
        ).fetchone()
    assert row is not None
    return WidgetChatbot(id=row["id"], public_id=row["public_id"], workspace_id=workspace_id)


def open_session(
    db: Database, settings: Settings, chatbot: WidgetChatbot, visitor_id: str, host: str = "203.0.113.7"
) -> Any:
    call = service.PublicCall(
        public_id=chatbot.public_id,
        origin="https://shop.example",
        source_check=new_source_check(settings, "widget", host),
        source_host=host,
    )
    body = SessionRequest(visitor_id=visitor_id, page_url="https://shop.example/")
    return service.open_session(db, settings, call, body)


def test_editors_read_a_chatbots_visitor_conversations_and_no_one_else(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    owner, editor, viewer, stranger = make_user(), make_user(), make_user(), make_user()
    workspace = team(db, owner, {editor.id: "editor", viewer.id: "viewer"})
    chatbot = chatbot_in(db, workspace)
    visitor = new_visitor_id()
    open_session(db, Settings(widget_session_secret=SECRET), chatbot, visitor)
    conversation = seed_conversation(
        database_url,
        chatbot,
        visitor,
        [("user", "Can I get a refund?", None), ("assistant", "Yes, in 30 days.", None)],
    )

    for member in (owner, editor):
        with db.user_transaction(member.principal) as conn:
            assert [r["id"] for r in conn.execute("select id from public.visitor_conversations")] == [conversation]
            found = conn.execute(
                "select content from public.visitor_messages where search_vector @@ plainto_tsquery('simple', 'refund')"
            ).fetchall()
            assert found == [{"content": "Can I get a refund?"}]
            assert len(conn.execute("select id from public.widget_visitors").fetchall()) == 1
    with db.user_transaction(editor.principal) as conn:  # the inbox's triage
        changed = conn.execute(
            "update public.visitor_conversations set status = 'resolved', tags = '{billing}', notes = 'ok'"
            " returning status"
        ).fetchall()
        assert changed == [{"status": "resolved"}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(editor.principal) as conn:
        conn.execute("update public.visitor_conversations set rating = 5")  # the visitor's alone
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(editor.principal) as conn:
        conn.execute("update public.visitor_messages set content = 'rewritten'")
    for outsider in (viewer, stranger):
        with db.user_transaction(outsider.principal) as conn:
            for table in ("visitor_conversations", "visitor_messages", "widget_visitors"):
                assert conn.execute(f"select * from public.{table}").fetchall() == [], table  # noqa: S608
            assert conn.execute("delete from public.visitor_conversations returning id").fetchall() == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
        conn.execute("select * from public.visitor_messages")


def test_a_flood_from_one_address_is_cut_while_another_address_is_still_answered(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    chatbot = chatbot_in(db, team(db, owner))
    settings = tight(widget_rate_limit_per_minute=6, widget_rate_limit_burst=3)
    flood = f"198.51.100.{uuid.uuid4().int % 250}"
    for _ in range(3):
        open_session(db, settings, chatbot, new_visitor_id(), host=flood)
    newcomer = new_visitor_id()
    with pytest.raises(RateLimitedError) as refused:
        open_session(db, settings, chatbot, newcomer, host=flood)
    assert refused.value.details["bucket"] == "widget" and refused.value.details["retry_after"] >= 1
    with db.service_transaction() as conn:  # a refused request wrote nothing
        assert (
            conn.execute("select 1 from public.widget_visitors where visitor_id = %s", (newcomer,)).fetchall()
            == []
        )
    assert open_session(db, settings, chatbot, newcomer, host="192.0.2.44").session_token


def test_one_visitor_is_cut_at_their_limit_while_another_visitor_is_answered(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    chatbot = chatbot_in(db, team(db, make_user()))
    settings = tight(widget_visitor_rate_limit_per_minute=6, widget_visitor_rate_limit_burst=2)
    busy, calm = new_visitor_id(), new_visitor_id()
    for _ in range(2):
        open_session(db, settings, chatbot, busy)
    call = service.PublicCall(
        public_id=chatbot.public_id, origin=None, source_check=new_source_check(settings, "widget", "203.0.113.7")
    )
    with pytest.raises(RateLimitedError) as refused:
        service.open_session(db, settings, call, SessionRequest(visitor_id=busy, page_url="https://shop.example/"))
    assert refused.value.details["bucket"] == "widget_visitor"
    assert call.visitor_check is not None and int(call.visitor_check.headers()["Retry-After"]) >= 1
    assert open_session(db, settings, chatbot, calm).session_token  # same address, another visitor
