"""What the widget's public chat adds to a chatbot turn's time to first token (issue 27, "Done when"): a
visitor's turn (`POST /public/chatbots/{public_id}/chat` with a session token: the anonymous checks'
transaction (the source's and the visitor's buckets, the chatbot, the origin, the token), then the turn's
prepare as the service) against a member's in-app turn with the same chatbot (`POST /chat/stream` with
`chatbot_id`), same local server, same fake OpenRouter, same run, requests interleaved pair by pair (the
order alternates). Both pay the same retrieval (the query's embedding by the fake's offline stand-in and the
chatbot's search over its document's `ONEAI_BENCH_WIDGET_CHUNKS` chunks, default 2,000; `--quick` 500),
the same credits hold and the same relay. Every request starts a new conversation (the member's also asks
the title model, in parallel, as a first turn does; a visitor's conversation has no title). TTFT runs from
the request's start to the first `text-delta` part.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from bench.chat_stream import (
    CHAT_MODEL,
    ISSUER,
    JWT_SECRET,
    SUPABASE_URL,
    TITLE_MODEL,
    UPSTREAM_KEY,
    _relay_delta,
    _stream,
)
from local.dev_process import LocalServerProcess, run_local_server
from local.fake_openrouter import FakeOpenRouter, Reply
from oneai.auth import mint_dev_token
from oneai.db.knowledge import vector_literal
from oneai.knowledge.offline_embedding import offline_embedding

PAIRS = 60
QUICK_PAIRS = 15
WARMUP_PAIRS = 3
DEFAULT_CHUNKS = 2_000
QUICK_CHUNKS = 500
TOP_K = 5
SHOP = "https://shop.example"
QUESTION = "Within how many days are refunds paid to the card?"
WORDS = [
    "refund",
    "card",
    "days",
    "shipping",
    "order",
    "return",
    "exchange",
    "gift",
    "policy",
    "store",
    "europe",
    "courier",
    "week",
]


@contextlib.contextmanager
def _server(url: str, fake: FakeOpenRouter) -> Iterator[LocalServerProcess]:
    """`python -m local` against the fake, with every rate limit on and far above the run's requests."""
    limits = {
        name: "100000"
        for name in (
            "ONEAI_RATE_LIMIT_PER_MINUTE",
            "ONEAI_RATE_LIMIT_BURST",
            "ONEAI_CHAT_RATE_LIMIT_PER_MINUTE",
            "ONEAI_CHAT_RATE_LIMIT_BURST",
            "ONEAI_WIDGET_RATE_LIMIT_PER_MINUTE",
            "ONEAI_WIDGET_RATE_LIMIT_BURST",
            "ONEAI_WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE",
            "ONEAI_WIDGET_VISITOR_RATE_LIMIT_BURST",
        )
    }
    env = {
        "DATABASE_URL": url,
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "OPENROUTER_API_KEY": UPSTREAM_KEY,
        "OPENROUTER_BASE_URL": fake.base_url,
        "ONEAI_TITLE_MODEL": TITLE_MODEL,
        **limits,
    }
    with run_local_server(env) as server:
        yield server


def _setup(conn: psycopg.Connection[Any], chunks: int) -> tuple[str, uuid.UUID, str]:
    """The member (owner of an enterprise workspace, so no daily limit is near), a document of `chunks`
    chunks embedded with the offline stand-in, the chatbot on it (active, top_k 5, min_score 0: every
    turn gets its 5 passages), credits for the run. Answers (member's token, chatbot id, public id)."""
    member = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, 'member@bench.test')", (member,))
    conn.execute("update public.users set subscription_tier = 'enterprise' where id = %s", (member,))
    workspace = conn.execute(
        "select id from public.workspaces where owner_id = %s and personal", (member,)
    ).fetchone()[0]  # type: ignore[index]
    document = conn.execute(
        "insert into public.documents (workspace_id, filename, media_type, size_bytes, storage_key, status)"
        " values (%s, 'policy.pdf', 'application/pdf', 100, %s, 'ready') returning id",
        (workspace, f"workspaces/{workspace}/{uuid.uuid4()}"),
    ).fetchone()[0]  # type: ignore[index]
    with conn.cursor() as cursor:
        rows = []
        for index in range(chunks):
            text = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(12)) + f" clause {index}."
            rows.append(
                (workspace, document, index, text, 1 + index // 10, 14, vector_literal(offline_embedding(text)))
            )
        cursor.executemany(
            "insert into public.document_chunks (workspace_id, document_id, chunk_index, text, page, tokens,"
            " embedding) values (%s, %s, %s, %s, %s, %s, %s::extensions.vector)",
            rows,
        )
    conn.execute("analyze public.document_chunks, public.documents")
    bot, public_id = conn.execute(
        "insert into public.chatbots (workspace_id, name, model, system_prompt, retrieval_top_k,"
        " retrieval_min_score, max_tokens, status) values (%s, 'Bench', %s, 'You answer from the documents.',"
        " %s, 0, 200, 'active') returning id, public_id",
        (workspace, CHAT_MODEL, TOP_K),
    ).fetchone()  # type: ignore[misc]
    conn.execute(
        "insert into public.chatbot_documents (chatbot_id, document_id, workspace_id) values (%s, %s, %s)",
        (bot, document, workspace),
    )
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claim.role', 'service_role', true)")
        conn.execute("select oneai_private.grant_credits(%s, 100000, 'bench', null)", (workspace,))
    token = mint_dev_token(member, secret=JWT_SECRET, issuer=ISSUER, email="member@bench.test")
    return token, uuid.UUID(str(bot)), str(public_id)


def run(*, quick: bool = False) -> None:
    chunks = int(os.environ.get("ONEAI_BENCH_WIDGET_CHUNKS", QUICK_CHUNKS if quick else DEFAULT_CHUNKS))
    pairs = QUICK_PAIRS if quick else PAIRS
    print(
        f"widget_chat: time to first token, a widget visitor's turn vs a member's in-app chatbot turn ({chunks:,} chunks)"
    )
    with throwaway_database() as url, FakeOpenRouter(delay=0.0) as fake:
        with psycopg.connect(url, autocommit=True) as conn:
            token, bot, public_id = _setup(conn, chunks)
        in_app: list[float] = []
        widget: list[float] = []
        with _server(url, fake) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            opened = client.post(
                f"/public/chatbots/{public_id}/sessions",
                json={"visitor_id": uuid.uuid4().hex, "page_url": f"{SHOP}/help"},
                headers={"origin": SHOP},
            )
            opened.raise_for_status()
            visitor = {"Authorization": f"Bearer {opened.json()['session_token']}", "Origin": SHOP}
            member = {"Authorization": f"Bearer {token}"}
            variants = {
                "in-app": (
                    f"{server.base_url}/chat/stream",
                    {"chatbot_id": str(bot), "content": QUESTION},
                    member,
                ),
                "widget": (f"{server.base_url}/public/chatbots/{public_id}/chat", {"content": QUESTION}, visitor),
            }
            for index in range(WARMUP_PAIRS + pairs):
                order = ("in-app", "widget") if index % 2 == 0 else ("widget", "in-app")
                for variant in order:
                    fake.script(Reply(chunks=["One ", "two."]), model=CHAT_MODEL)
                    route, body, headers = variants[variant]
                    _, first, _, _, _ = _stream(client, route, body, headers, _relay_delta)
                    if index >= WARMUP_PAIRS:
                        (in_app if variant == "in-app" else widget).append(first)
            time.sleep(0.2)  # the last replies' finish
        with psycopg.connect(url) as conn:
            saved = conn.execute(
                "select count(*), min(ttft_ms), max(ttft_ms) from public.visitor_messages"
                " where role = 'assistant' and sources is not null and jsonb_array_length(sources) = %s",
                (TOP_K,),
            ).fetchone()
    assert saved is not None
    added = [w - a for w, a in zip(widget, in_app, strict=True)]
    a, w = summarize(in_app), summarize(widget)
    print(
        table(
            ("variant", "TTFT p50", "TTFT p95", "min"),
            [
                ["in-app chatbot turn (/chat/stream)", ms(a.median), ms(a.p95), ms(a.min)],
                ["widget visitor turn (/public/.../chat)", ms(w.median), ms(w.p95), ms(w.min)],
            ],
        )
    )
    print(
        f"  added by the widget (ms): paired differences p50 {ms(statistics.median(added))},"
        f" p95 {ms(summarize(added).p95)}; p50 widget - p50 in-app {ms(w.median - a.median)}"
    )
    print(
        f"  {saved[0]} visitor replies saved with their {TOP_K} sources; their recorded ttft_ms"
        f" {saved[1]}-{saved[2]} (server side, from the message received); {len(added)} pairs"
    )
