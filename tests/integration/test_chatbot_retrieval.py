"""A chatbot's retrieval at the SQL level (issue 25 items 3, 5, 7), through the product's one-round-trip read
as real users: the hybrid search narrowed to the chatbot's ready documents inside the statement, its top_k
and min_score, the caller's RLS; and the workspace's daily message counter (never over its limit, never
below zero)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from uuid import UUID

import psycopg
import pytest

from oneai.chatbots import retrieval
from oneai.chatbots.chatbot_turn import ChatbotConfig
from oneai.db import chatbot_turns
from oneai.db.connection import Database
from oneai.errors import NotFoundError
from tests.conftest import AppUser
from tests.integration.test_knowledge_store import add_document, near, unit_vector
from tests.integration.test_workspaces_rls import team


def config(chatbot_id: UUID, workspace_id: UUID, *, top_k: int = 5, min_score: float = 0.0) -> ChatbotConfig:
    return ChatbotConfig(
        id=chatbot_id,
        workspace_id=workspace_id,
        name="Bot",
        model="openai/gpt-4o-mini",
        temperature=0.3,
        max_tokens=100,
        system_prompt="",
        top_k=top_k,
        min_score=min_score,
        fallback_mode="answer",
        fallback_message=None,
    )


def add_chatbot(database_url: str, workspace_id: UUID, documents: list[UUID]) -> UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "insert into public.chatbots (workspace_id, name, model) values (%s, 'Bot', 'openai/gpt-4o-mini')"
            " returning id",
            (workspace_id,),
        ).fetchone()
        assert row is not None
        for document_id in documents:
            conn.execute(
                "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
                (row[0], document_id, workspace_id),
            )
    return UUID(str(row[0]))


def test_the_search_keeps_the_chatbots_ready_documents_under_the_callers_rls(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    rng = random.Random(25)
    owner, viewer, stranger = make_user(), make_user(), make_user()
    ours = team(db, owner, {viewer.id: "viewer"})
    theirs = team(db, owner, name="Theirs")
    topic = unit_vector(rng)
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row, autocommit=True) as conn:
        # near-identical passages everywhere: only the linked, ready one may come back
        linked, linked_chunks = add_document(conn, ours, [("refunds are paid in 14 days", near(topic, rng, 0.1))])
        processing, _ = add_document(conn, ours, [("refunds are paid in 14 days", near(topic, rng, 0.1))])
        conn.execute("update public.documents set status = 'processing' where id = %s", (processing,))
        unlinked, _ = add_document(conn, ours, [("refunds are paid in 14 days", near(topic, rng, 0.05))])
        foreign, _ = add_document(conn, theirs, [("refunds are paid in 14 days", near(topic, rng, 0.0))])
    bot = add_chatbot(database_url, ours, [linked, processing])
    chatbot = config(bot, ours)

    for member in (owner, viewer):
        found = retrieval.search(db, member.principal, chatbot, text_query="refunds", embedding=topic)
        assert [(p.document_id, p.chunk_id) for p in found] == [(linked, linked_chunks[0])]
        assert found[0].media_type == "application/pdf" and found[0].score > 0.9
    # a stranger's search of the same chatbot finds nothing (RLS), whatever the statement names
    assert retrieval.search(db, stranger.principal, chatbot, text_query="refunds", embedding=topic) == []
    # min_score applies to the cosine similarity
    far = unit_vector(rng)
    assert (
        retrieval.search(db, owner.principal, config(bot, ours, min_score=0.9), text_query="x", embedding=far)
        == []
    )
    assert {unlinked, foreign}.isdisjoint(
        p.document_id
        for p in retrieval.search(db, owner.principal, chatbot, text_query="refunds", embedding=topic)
    )


def test_the_retrieve_route_service_is_404_for_a_non_member_and_a_deleted_chatbot(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    owner, stranger = make_user(), make_user()
    ours = team(db, owner)
    bot = add_chatbot(database_url, ours, [])
    with pytest.raises(NotFoundError):
        retrieval.retrieve(db, stranger.principal, bot, "refunds")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.chatbots set deleted_at = now() where id = %s", (bot,))
    with pytest.raises(NotFoundError):
        retrieval.retrieve(db, owner.principal, bot, "refunds")


def test_the_workspace_counter_stops_at_the_limit_and_its_refund_at_zero(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, stranger = make_user(), make_user()
    workspace = team(db, owner)
    limits = psycopg.types.json.Jsonb({"free": 2, "pro": 5, "enterprise": 9})
    admitted = []
    for _ in range(3):
        with db.user_transaction(owner.principal) as conn:
            row = conn.execute(
                "select oneai_private.admit_workspace_message(%s, %s) as a", (workspace, limits)
            ).fetchone()
            assert row is not None
            admitted.append((row["a"]["admitted"], row["a"]["used"], row["a"]["limit"], row["a"]["tier"]))
    assert admitted == [(True, 1, 2, "free"), (True, 2, 2, "free"), (False, 2, 2, "free")]
    today = date.fromisoformat(str(row["a"]["day"]))
    with db.user_transaction(owner.principal) as conn:
        assert [chatbot_turns.refund_workspace_message(conn, workspace, today) for _ in range(3)] == [
            True,
            True,
            False,
        ]
        assert chatbot_turns.workspace_messages(conn, workspace, today) == 0
    # a non-member can neither take nor give back a workspace's messages
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(stranger.principal) as conn:
        conn.execute("select oneai_private.admit_workspace_message(%s, %s)", (workspace, limits))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(stranger.principal) as conn:
        chatbot_turns.refund_workspace_message(conn, workspace, today)
    # and no member writes the counter directly
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(owner.principal) as conn:
        conn.execute("update public.workspace_message_counts set used = 0 where workspace_id = %s", (workspace,))
