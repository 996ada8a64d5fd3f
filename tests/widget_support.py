"""Chatbots and visitor conversations for the widget's tests, written as the service would (SQL through a
direct connection: the chatbot CRUD routes are another part of the platform)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.conftest import create_user


@dataclass(frozen=True)
class WidgetChatbot:
    id: uuid.UUID
    public_id: str
    workspace_id: uuid.UUID


def create_chatbot(
    database_url: str, *, widget: dict[str, Any] | None = None, status: str = "active", name: str = "Help desk"
) -> WidgetChatbot:
    owner = create_user(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        workspace_id = conn.execute(
            "select id from public.workspaces where owner_id = %s and personal", (owner.id,)
        ).fetchone()[0]
        row = conn.execute(
            "insert into public.chatbots (workspace_id, name, model, widget, status) values (%s, %s, %s, %s, %s)"
            " returning id, public_id",
            (workspace_id, name, "openai/gpt-4o-mini", json.dumps(widget or {}), status),
        ).fetchone()
    return WidgetChatbot(id=row[0], public_id=row[1], workspace_id=workspace_id)


def set_chatbot(database_url: str, chatbot: WidgetChatbot, **columns: Any) -> None:
    assignments = ", ".join(f"{name} = %s" for name in columns)
    values = [json.dumps(v) if isinstance(v, dict) else v for v in columns.values()]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"update public.chatbots set {assignments} where id = %s", (*values, chatbot.id))  # noqa: S608 - test names


def suspend_workspace(database_url: str, chatbot: WidgetChatbot) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.workspaces set suspended_at = now() where id = %s", (chatbot.workspace_id,))


def seed_conversation(
    database_url: str,
    chatbot: WidgetChatbot,
    visitor_id: str,
    messages: list[tuple[str, str, list[dict[str, Any]] | None]],
) -> uuid.UUID:
    """A conversation of the visitor (whose session opened before, so their row exists) with these
    (role, content, sources) messages, as part 2's chat turn will write them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        visitor_ref = conn.execute(
            "select id from public.widget_visitors where chatbot_id = %s and visitor_id = %s",
            (chatbot.id, visitor_id),
        ).fetchone()[0]
        conversation_id = conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_ref, visitor_id)"
            " values (%s, %s, %s, %s) returning id",
            (chatbot.workspace_id, chatbot.id, visitor_ref, visitor_id),
        ).fetchone()[0]
        for number, (role, content, sources) in enumerate(messages, start=1):
            conn.execute(
                "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number,"
                " sources) values (%s, %s, %s, %s, %s, %s)",
                (
                    conversation_id,
                    chatbot.workspace_id,
                    role,
                    content,
                    number,
                    json.dumps(sources) if sources else None,
                ),
            )
    return conversation_id


def new_visitor_id() -> str:
    return str(uuid.uuid4())


KNOWLEDGE_MODEL = "anthropic/claude-3.5-haiku"
SYSTEM_PROMPT = "You are Acme's support assistant. Answer briefly."
REFUND_SENTENCE = "Refunds are paid within fourteen days to the original card."
QUESTION = "Within how many days are refunds paid to the card?"


def knowledge_chatbot(
    database_url: str,
    *,
    credits: str | None = "1000.00",
    widget: dict[str, Any] | None = None,
    **fields: Any,
) -> WidgetChatbot:
    """An active chatbot of a new owner's workspace on a refunds policy (the answer on page 2, embedded with
    the offline stand-in the fake OpenRouter also uses), its workspace granted `credits` (None: none)."""
    from tests.e2e.test_chatbot_chat_http import document, grant_credits

    owner = create_user(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        workspace_id = conn.execute(
            "select id from public.workspaces where owner_id = %s and personal", (owner.id,)
        ).fetchone()[0]
    refunds = document(
        database_url,
        workspace_id,
        "refunds.pdf",
        [("Our returns desk is open on weekdays.", 1), (REFUND_SENTENCE, 2)],
    )
    if credits is not None:
        grant_credits(database_url, workspace_id, credits)
    values = {
        "name": "Support",
        "model": KNOWLEDGE_MODEL,
        "system_prompt": SYSTEM_PROMPT,
        "temperature": 0.2,
        "max_tokens": 300,
        "retrieval_top_k": 3,
        "retrieval_min_score": 0.2,
        "status": "active",
        "widget": json.dumps(widget or {}),
    } | fields
    columns = ", ".join(["workspace_id", *values])
    marks = ", ".join(["%s"] * (len(values) + 1))
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f"insert into public.chatbots ({columns}) values ({marks}) returning id, public_id",  # noqa: S608 - test keys
            (workspace_id, *values.values()),
        ).fetchone()
        conn.execute(
            "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
            (row[0], refunds, workspace_id),
        )
    return WidgetChatbot(id=row[0], public_id=row[1], workspace_id=workspace_id)


def owner_headers(database_url: str, chatbot: WidgetChatbot) -> dict[str, str]:
    """The `Authorization` of the chatbot's workspace's owner (to read the inbox as they would)."""
    from tests.conftest import token_for

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select u.id, u.email from public.workspaces w join public.users u on u.id = w.owner_id where w.id = %s",
            (chatbot.workspace_id,),
        ).fetchone()
    return {"authorization": f"Bearer {token_for(row[0], row[1])}"}
