"""What a chatbot's retrieval adds to a chat turn's time to first token (issue 25 item 7): a chatbot turn
(`POST /chat/stream` with `chatbot_id`: the prepare round trip, the query's embedding by the fake
OpenRouter's offline stand-in, the one-round-trip hybrid search of the chatbot's documents, the prompt
with the passages, their `source-document` parts) against a plain turn (`model`), same server, same run,
same fake OpenRouter, requests interleaved pair by pair (the order alternates).

Data: `ONEAI_BENCH_KNOWLEDGE_CHUNKS` chunks (default 100,000; `--quick` 10,000) loaded as
bench/knowledge_search.py loads them (99 % in the workspace the chatbot is in, all of its one document,
which the chatbot is linked to; 1 % in another), HNSW built after loading. The chatbot: top_k 5,
min_score 0 (every turn gets its 5 passages, so every turn pays the whole search). Every request starts a
new conversation (both variants then also ask the title model, in parallel, as a first turn does).
TTFT runs from the request's start to the first `text-delta` part. Goal: retrieval adds <= 15 ms p50.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from typing import Any

import httpx
import psycopg

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from bench.chat_stream import CHAT_MODEL, ISSUER, JWT_SECRET, QUOTA_LIMIT, _relay_delta, _stream, local_server
from bench.knowledge_search import (
    CENTRES,
    DEFAULT_CHUNKS,
    INDEX,
    QUICK_CHUNKS,
    SEED,
    _gauss_vector,
    _scoped,
    _setup,
)
from local.fake_openrouter import FakeOpenRouter, Reply
from oneai.auth import mint_dev_token
from oneai.chatbots.retrieval import embed_with
from oneai.config import Settings
from oneai.db import knowledge
from oneai.knowledge.offline_embedding import offline_embedding
from oneai.logging import logger
from oneai.openrouter.client import OpenRouterClient

PAIRS = 60
QUICK_PAIRS = 15
WARMUP_PAIRS = 3
TOP_K = 5
GOAL_ADDED_P50_MS = 15.0
QUESTION = "kalomi nupero tisavo: which of these is covered?"


def _chatbot(conn: psycopg.Connection[Any], workspace: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "insert into public.chatbots (workspace_id, name, model, system_prompt, retrieval_top_k,"
        " retrieval_min_score, max_tokens) values (%s, 'Bench', %s, 'You answer from the documents.', %s, 0, 200)"
        " returning id",
        (workspace, CHAT_MODEL, TOP_K),
    ).fetchone()
    assert row is not None
    conn.execute(
        "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id)"
        " select %s, d.id, d.workspace_id from public.documents d where d.workspace_id = %s",
        (row[0], workspace),
    )
    # Its replies are paid from the workspace's credits (no key of its own): enough for the whole run,
    # granted as the admin function grants them.
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claim.role', 'service_role', true)")
        conn.execute("select oneai_private.grant_credits(%s, 100000, 'bench', null)", (workspace,))
    return uuid.UUID(str(row[0]))


def _token(conn: psycopg.Connection[Any], member: uuid.UUID) -> str:
    conn.execute("update public.usage_quotas set quota_limit = %s where user_id = %s", (QUOTA_LIMIT, member))
    # The workspace's chatbot messages: a limit the run stays under.
    conn.execute("update public.users set subscription_tier = 'enterprise' where id = %s", (member,))
    return mint_dev_token(member, secret=JWT_SECRET, issuer=ISSUER, email="member@bench.test")


def _search_alone(url: str, member: uuid.UUID, workspace: uuid.UUID, chatbot: uuid.UUID) -> list[float]:
    """The chatbot's search statement as the member, timed on one connection (what the turn's search round
    trip runs), for the same question's offline embedding."""
    params = knowledge.search_params(
        workspace_id=workspace,
        embedding=offline_embedding(QUESTION),
        query=QUESTION,
        top_k=TOP_K,
        min_score=0.0,
        chatbot_id=chatbot,
    )
    samples: list[float] = []
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        for index in range(WARMUP_PAIRS + 30):
            started = time.perf_counter()
            _scoped(conn, member, exact=False)
            knowledge.set_index_settings(conn, TOP_K)
            found = conn.execute(knowledge.SEARCH, params).fetchall()
            conn.rollback()
            if len(found) != TOP_K:
                raise RuntimeError(f"the search found {len(found)} rows, not {TOP_K}")
            if index >= WARMUP_PAIRS:
                samples.append(time.perf_counter() - started)
    return samples


async def _embedding_alone(fake: FakeOpenRouter) -> list[float]:
    settings = Settings.model_validate(
        {"openrouter_api_key": "sk-or-v1-bench-key", "openrouter_base_url": fake.base_url}
    )
    samples: list[float] = []
    async with OpenRouterClient(settings) as client:
        for index in range(WARMUP_PAIRS + 30):
            started = time.perf_counter()
            await embed_with(client, QUESTION)
            if index >= WARMUP_PAIRS:
                samples.append(time.perf_counter() - started)
    return samples


def run(*, quick: bool = False) -> None:  # noqa: PLR0915 - one report, read top to bottom
    chunks = int(os.environ.get("ONEAI_BENCH_KNOWLEDGE_CHUNKS", QUICK_CHUNKS if quick else DEFAULT_CHUNKS))
    pairs = QUICK_PAIRS if quick else PAIRS
    print(f"chatbot_turn: time to first token, chatbot turn (retrieval over {chunks:,} chunks) vs plain turn")
    # The embedding timed in this process logs a line per call; the report is the figures alone.
    logger.setLevel("WARNING")
    rng = random.Random(SEED)
    centres = [_gauss_vector(rng, 1.0) for _ in range(CENTRES)]
    with throwaway_database() as url, FakeOpenRouter(delay=0.0) as fake:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("drop index public.idx_document_chunks_embedding")
            member, (big, _small) = _setup(conn, chunks, centres, rng)
            conn.execute("set maintenance_work_mem = '1GB'")
            conn.execute(INDEX)
            conn.execute("analyze public.document_chunks, public.documents")
            bot = _chatbot(conn, big)
            token = _token(conn, member)
        headers = {"Authorization": f"Bearer {token}"}
        plain_ttft: list[float] = []
        bot_ttft: list[float] = []
        # Per chatbot turn, on the fake's clock (this process's): request start -> embedding request
        # received (the prepare), -> the model's request received (embedding answer, search, prompt); and
        # per plain turn, request start -> the model's request received.
        to_embedding: list[float] = []
        embedding_to_model: list[float] = []
        plain_to_model: list[float] = []
        with local_server(url, fake) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            bodies = {
                "plain": {"model": CHAT_MODEL, "content": QUESTION},
                "chatbot": {"chatbot_id": str(bot), "content": QUESTION},
            }
            for index in range(WARMUP_PAIRS + pairs):
                order = ("plain", "chatbot") if index % 2 == 0 else ("chatbot", "plain")
                for variant in order:
                    fake.script(Reply(chunks=["One ", "two."]), model=CHAT_MODEL)
                    started = time.monotonic()
                    _, first, _, _, _ = _stream(
                        client, f"{server.base_url}/chat/stream", bodies[variant], headers, _relay_delta
                    )
                    if index < WARMUP_PAIRS:
                        continue
                    asked = next(
                        r.received_at
                        for r in fake.chat_requests
                        if r.received_at >= started and r.body.get("model") == CHAT_MODEL
                    )
                    if variant == "plain":
                        plain_ttft.append(first)
                        plain_to_model.append(asked - started)
                    else:
                        bot_ttft.append(first)
                        embedded = next(
                            r.received_at for r in fake.embeddings_requests if r.received_at >= started
                        )
                        to_embedding.append(embedded - started)
                        embedding_to_model.append(asked - embedded)
        search_alone = _search_alone(url, member, big, bot)
        embedding_alone = asyncio.run(_embedding_alone(fake))
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "select count(*), min(jsonb_array_length(sources)) from public.chat_messages where sources is not null"
            ).fetchone()
    assert row is not None
    added = [b - p for b, p in zip(bot_ttft, plain_ttft, strict=True)]
    plain, chatbot = summarize(plain_ttft), summarize(bot_ttft)
    print(
        table(
            ("variant", "TTFT p50", "TTFT p95", "min"),
            [
                ["plain turn", ms(plain.median), ms(plain.p95), ms(plain.min)],
                [
                    f"chatbot turn (top {TOP_K} of {chunks:,} chunks)",
                    ms(chatbot.median),
                    ms(chatbot.p95),
                    ms(chatbot.min),
                ],
            ],
        )
    )
    added_p50 = statistics.median(added)
    difference_p50 = chatbot.median - plain.median
    verdict = "ok" if added_p50 * 1000 <= GOAL_ADDED_P50_MS else "OVER"
    print(
        f"  added by retrieval (ms): paired differences p50 {ms(added_p50)} (goal <= {GOAL_ADDED_P50_MS:g}: {verdict}),"
        f" p95 {ms(summarize(added).p95)}; p50 chatbot - p50 plain {ms(difference_p50)}"
    )
    breakdown: list[tuple[str, list[float]]] = [
        ("plain: request start -> model asked", plain_to_model),
        ("chatbot: request start -> query embedding asked (the prepare)", to_embedding),
        ("chatbot: embedding asked -> model asked (embedding, search, prompt)", embedding_to_model),
    ]
    print(
        table(
            ("where the time goes (ms)", "p50", "p95"),
            [[label, ms(statistics.median(v)), ms(summarize(v).p95)] for label, v in breakdown],
        )
    )
    print(
        f"  alone, in this process: the chatbot's search (scope, index settings, statement; one connection)"
        f" p50 {ms(statistics.median(search_alone))}, p95 {ms(summarize(search_alone).p95)};"
        f" the query's embedding by the fake (one open client) p50 {ms(statistics.median(embedding_alone))},"
        f" p95 {ms(summarize(embedding_alone).p95)}"
    )
    print(f"  {row[0]} chatbot replies saved, each with at least {row[1]} sources; {len(added)} pairs")
