"""Visitor conversations for the inbox's tests, written with SQL as the service (the widget's public chat
that writes them comes later), with the triage and times a test chooses."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg


def seed_visitor_conversation(
    database_url: str,
    chatbot_id: uuid.UUID | str,
    workspace_id: uuid.UUID | str,
    messages: list[tuple[str, str]],
    *,
    visitor_id: str | None = None,
    started_at: datetime | None = None,
    status: str = "open",
    rating: int | None = None,
    sources: list[dict[str, Any]] | None = None,
) -> uuid.UUID:
    """A visitor (made if new) of the chatbot and one conversation of theirs with these (role, content)
    messages, one second apart from `started_at` (default now); `sources` go on the assistant messages."""
    visitor_id = visitor_id or uuid.uuid4().hex
    with psycopg.connect(database_url, autocommit=True) as conn:
        visitor_ref = conn.execute(
            "insert into public.widget_visitors (workspace_id, chatbot_id, visitor_id, page_url, referrer,"
            " user_agent, locale, source_hash) values (%s, %s, %s, 'https://shop.example/help',"
            " 'https://search.example/', 'Mozilla/5.0 (test)', 'en-GB', sha256('203.0.113.7'::bytea))"
            " on conflict (chatbot_id, visitor_id) do update set last_seen_at = now() returning id",
            (workspace_id, chatbot_id, visitor_id),
        ).fetchone()[0]
        conversation_id = conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_ref, visitor_id, status,"
            " rating, rating_comment, rated_at, started_at) values (%s, %s, %s, %s, %s, %s, %s,"
            " case when %s::smallint is null then null else now() end, coalesce(%s, now())) returning id",
            (
                workspace_id, chatbot_id, visitor_ref, visitor_id, status, rating,
                "thanks" if rating else None, rating, started_at,
            ),
        ).fetchone()[0]  # fmt: skip
        for number, (role, content) in enumerate(messages, start=1):
            conn.execute(
                "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number,"
                " model_id, sources, created_at) values (%s, %s, %s, %s, %s, %s, %s,"
                " coalesce(%s, now()) + %s * interval '1 second')",
                (
                    conversation_id, workspace_id, role, content, number,
                    "openai/gpt-4o-mini" if role == "assistant" else None,
                    json.dumps(sources) if sources and role == "assistant" else None,
                    started_at, number,
                ),
            )  # fmt: skip
    return uuid.UUID(str(conversation_id))


def add_chatbot(database_url: str, workspace_id: uuid.UUID | str, name: str = "Help desk") -> uuid.UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "insert into public.chatbots (workspace_id, name, model, status) values (%s, %s, 'openai/gpt-4o-mini',"
            " 'active') returning id",
            (workspace_id, name),
        ).fetchone()
    return uuid.UUID(str(row[0]))
