"""A chatbot's retrieval (issue 25 items 3, 5, 7): the passages of its own documents for a turn.

- The query: the last user message, plus a short window of the user's earlier messages, newest first, while
  they fit: at most `QUERY_EARLIER_USER_MESSAGES` (2) earlier messages and `QUERY_MAX_CHARS` (1,200
  characters, about 300 tokens) in all; the last message alone is cut to that bound. The window lets a
  follow-up ("and for Europe?") find what the conversation is about. The vector is the window's; the
  full-text half of the search takes the last message alone (its words are ANDed: the window's would
  rarely all match one chunk).
- The embedding: the same path as the knowledge search route (`OpenRouterEmbeddings` with the query's
  short attempts of `oneai.knowledge.documents`: OpenRouter's embeddings, or the offline stand-in of the
  fake OpenRouter), through the turn's own OpenRouter client: a new client per query costs its TLS setup,
  ~90 ms measured (bench/chatbot_turn.py), more than the whole search.
- The search: the knowledge base's hybrid search (`oneai.db.knowledge`), with the chatbot's id in the
  statement (its `ready` documents are read from chatbot_documents there), its top_k and min_score, under
  the caller's RLS, in ONE round trip (`Database.user_read`: scope, checks, index settings and search
  sent together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any
from uuid import UUID

import anyio.to_thread

from oneai.auth import Principal
from oneai.chat.turn import PreparedTurn, refund_turn
from oneai.chatbots.chatbot_turn import ChatbotConfig, Passage, refund_admission
from oneai.conversations.models import Message
from oneai.db import chatbot_turns
from oneai.db import knowledge as knowledge_repo
from oneai.db.connection import Database
from oneai.errors import NotFoundError, UpstreamError
from oneai.knowledge.document_models import KnowledgeHitOut
from oneai.knowledge.documents import (
    QUERY_EMBEDDING_BUDGET_SECONDS,
    QUERY_EMBEDDING_TIMEOUT_SECONDS,
    QUERY_MAX_RETRY_AFTER,
    embed_query,
)
from oneai.logging import logger
from oneai.openrouter.client import OpenRouterClient
from oneai.openrouter.embeddings import OpenRouterEmbeddings
from oneai.openrouter.errors import OpenRouterError

QUERY_EARLIER_USER_MESSAGES = 2
QUERY_MAX_CHARS = 1200


def retrieval_query(history: Sequence[Message]) -> tuple[str, str]:
    """(the embedded query: the last user message and its window, oldest first; the full-text query:
    the last user message) of a turn's history."""
    users = [m.content.strip() for m in reversed(history) if m.role == "user" and m.content.strip()]
    if not users:
        return "", ""
    last = users[0][:QUERY_MAX_CHARS]
    kept = [last]
    used = len(last)
    for earlier in users[1 : 1 + QUERY_EARLIER_USER_MESSAGES]:
        if used + 1 + len(earlier) > QUERY_MAX_CHARS:
            break
        kept.append(earlier)
        used += 1 + len(earlier)
    return "\n".join(reversed(kept)), last


def _passages(hits: Sequence[knowledge_repo.KnowledgeHit]) -> list[Passage]:
    return [
        Passage(
            chunk_id=h.chunk_id,
            document_id=h.document_id,
            filename=h.filename,
            media_type=h.media_type,
            page=h.page,
            index=h.index,
            text=h.text,
            score=h.score,
        )
        for h in hits
    ]


Read = Callable[[list[tuple[str, dict[str, object]]]], list[dict[str, Any]]]


def search(
    db: Database,
    principal: Principal,
    chatbot: ChatbotConfig,
    *,
    text_query: str,
    embedding: Sequence[float],
    read: Read | None = None,
) -> list[Passage]:
    """The chatbot's passages for a query: one round trip, under the caller's RLS (`read`: elsewhere, a
    visitor's turn's ledger, as the service; the statement names the chatbot either way)."""
    params = knowledge_repo.search_params(
        workspace_id=chatbot.workspace_id,
        embedding=embedding,
        query=text_query,
        top_k=chatbot.top_k,
        min_score=chatbot.min_score,
        chatbot_id=chatbot.id,
    )
    batch = knowledge_repo.search_batch(params)
    rows = db.user_read(principal, batch) if read is None else read(batch)
    return _passages(knowledge_repo.hits_of(rows))


async def embed_with(client: OpenRouterClient, query: str) -> list[float]:
    """The query's embedding through an open client (the knowledge search's attempts and budget)."""
    retry = replace(client.retry, budget=QUERY_EMBEDDING_BUDGET_SECONDS, max_retry_after=QUERY_MAX_RETRY_AFTER)
    embeddings = OpenRouterEmbeddings(client, timeout=QUERY_EMBEDDING_TIMEOUT_SECONDS, retry=retry)
    try:
        result = await embeddings.embed([query])
    except OpenRouterError as error:
        # Its type only: an upstream message could echo the query.
        logger.warning("query embedding failed", extra={"error_type": type(error).__name__})
        raise UpstreamError("The embedding service failed before the reply started; try again") from None
    return result.vectors[0]


async def passages_for(
    db: Database,
    client: OpenRouterClient,
    principal: Principal,
    chatbot: ChatbotConfig,
    history: Sequence[Message],
    *,
    read: Read | None = None,
) -> list[Passage]:
    embedded, text_query = retrieval_query(history)
    if not embedded:
        return []
    embedding = await embed_with(client, embedded)
    return await anyio.to_thread.run_sync(
        partial(search, db, principal, chatbot, text_query=text_query, embedding=embedding, read=read)
    )


async def with_knowledge(db: Database, client: OpenRouterClient, prepared: PreparedTurn) -> PreparedTurn:
    """A chatbot turn with its passages, or its fallback when none reaches min_score: `answer` goes on
    without them; `message` makes the fixed message the reply (no model is asked: the workspace's unit
    goes back). A failure here (the embedding service) refunds the turn (its unit, its credits hold) and is
    the turn's error; a cancellation (the caller went away) refunds it too, at once."""
    chatbot = prepared.chatbot
    if chatbot is None:
        return prepared
    ledger = prepared.ledger
    read = None if ledger is None else partial(ledger.read, db)
    try:
        found = await passages_for(db, client, prepared.principal, chatbot, prepared.history, read=read)
    except BaseException:  # an API error, and a cancellation too (the caller went away): the model is not asked
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(refund_turn, db, prepared)
        raise
    if found:
        return replace(prepared, knowledge=tuple(found))
    logger.info("no passage reached min_score", extra={"fallback": chatbot.fallback_mode})
    if chatbot.fallback_mode == "message" and chatbot.fallback_message:
        if prepared.admission is not None:
            await anyio.to_thread.run_sync(refund_admission, db, prepared.principal, prepared.admission)
        return replace(prepared, fixed_reply=chatbot.fallback_message, admission=None)
    return prepared


def retrieve(db: Database, principal: Principal, chatbot_id: UUID, query: str) -> list[KnowledgeHitOut]:
    """`POST /chatbots/{id}/retrieve`: the chunks the chatbot would use for `query` (members only: another
    workspace's chatbot is not found before anything is embedded)."""
    with db.user_transaction(principal) as conn:
        found = chatbot_turns.chatbot_settings(conn, chatbot_id)
    if found is None:
        raise NotFoundError("Chatbot not found")
    chatbot = ChatbotConfig.model_validate(found)
    embedding = embed_query(db.settings, query)
    return [
        KnowledgeHitOut(
            chunk_id=p.chunk_id,
            document_id=p.document_id,
            filename=p.filename,
            page=p.page,
            index=p.index,
            text=p.text,
            score=p.score,
        )
        for p in search(db, principal, chatbot, text_query=query[:QUERY_MAX_CHARS], embedding=embedding)
    ]
