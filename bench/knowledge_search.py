"""The knowledge base's hybrid search (issue 24) over 100,000 chunks: latency through the HNSW index
against an exact scan of the same data in the same run, and the index's recall@10 against that scan.

Data: `ONEAI_BENCH_KNOWLEDGE_CHUNKS` chunks (default 100,000; `--quick` 10,000) of 1536 dimensions,
clustered so that neighbours mean something: 100 seeded random centres, each chunk a centre plus two
seeded noise vectors (built in SQL with pgvector's vector addition, so loading takes seconds, not the
minutes Python's float formatting would), its text 30 words of a 2,000-word list. 99 % of the chunks belong
to one workspace, 1 % to another (the small tenant, whose search the filtered index alone leaves short).
The HNSW index is dropped before loading and built after (its build time is reported): the migration's
index, same definition.

Each search is `oneai.db.knowledge.search_chunks` as the workspace's member (role `authenticated`, RLS
on), in its own transaction, with a query vector near a random centre and two words of the list:
- through HNSW: as the product runs it;
- exact: the same statement with `enable_indexscan = off` for the transaction, so the vector part is a
  sequential scan and a sort (the planner's only other way), on the same data.
recall@10 compares the vector part alone (an empty query text, so no full-text list) of both.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from typing import Any

import psycopg

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, summarize, summary_row, table
from oneai.db.knowledge import EMBEDDING_DIMENSIONS, search_chunks, vector_literal

DEFAULT_CHUNKS = 100_000
QUICK_CHUNKS = 10_000
CENTRES = 100
NOISE_BANK = 1000
QUERIES = 100
QUICK_QUERIES = 20
WARMUP = 5
TOP_K = 10
SEED = 24
# 2,000 distinct made-up words of three syllables (no two share a stem), so each word is in about 1.5 %
# of the chunks, as a content word of real documents would be.
WORDS = [a + b + c for a in ("ka", "lo", "mi", "nu", "pe", "ro", "sa", "ti", "vo", "ze")
         for b in ("bar", "del", "fin", "gor", "hul", "jem", "kos", "lun", "mav", "nix")
         for c in ("a", "o", "um", "ix", "et", "an", "ol", "ur", "is", "ek", "ad", "ob", "uk", "ez", "ap",
                   "id", "om", "uv", "eg", "ax")]  # fmt: skip

INDEX = (
    "create index idx_document_chunks_embedding on public.document_chunks"
    " using hnsw (embedding extensions.vector_cosine_ops)"
)


def _gauss_vector(rng: random.Random, norm: float) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIMENSIONS)]
    scale = norm / math.sqrt(sum(v * v for v in values))
    return [v * scale for v in values]


def _setup(
    conn: psycopg.Connection[Any], chunks: int, centres: list[list[float]], rng: random.Random
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """(the member, [big workspace, small workspace]) with the chunks loaded and indexed."""
    member = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, 'member@bench.test')", (member,))
    workspaces: list[uuid.UUID] = []
    for name in ("Big", "Small"):
        row = conn.execute(
            "insert into public.workspaces (name, slug, owner_id) values (%s, %s, %s) returning id",
            (name, f"bench-{uuid.uuid4().hex[:12]}", member),
        ).fetchone()
        assert row is not None
        workspaces.append(row[0])
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'owner')",
            (row[0], member),
        )
    conn.execute("create temporary table centre (n int primary key, v extensions.vector(1536))")
    conn.execute("create temporary table noise (n int primary key, v extensions.vector(1536))")
    with conn.cursor().copy("copy centre (n, v) from stdin") as copy:
        for n, vector in enumerate(centres):
            copy.write_row((n, vector_literal(vector)))
    with conn.cursor().copy("copy noise (n, v) from stdin") as copy:
        for n in range(2 * NOISE_BANK):
            copy.write_row((n, vector_literal(_gauss_vector(rng, 0.35))))
    small_chunks = chunks // 100
    for workspace, count, offset in ((workspaces[0], chunks - small_chunks, 0), (workspaces[1], small_chunks, 7)):
        document = conn.execute(
            "insert into public.documents (workspace_id, filename, media_type, size_bytes, storage_key, status)"
            " values (%s, 'bench.pdf', 'application/pdf', 1, %s, 'ready') returning id",
            (workspace, f"documents/{workspace}/bench"),
        ).fetchone()
        assert document is not None
        conn.execute("select setseed(%s)", (SEED / 100 + offset / 1000,))
        conn.execute(
            """
            insert into public.document_chunks (workspace_id, document_id, chunk_index, text, page, tokens, embedding)
            select %(workspace)s, %(document)s, i,
                   (select string_agg((%(words)s::text[])[1 + floor(random() * %(nwords)s)::int], ' ')
                    from generate_series(1, 30) w where i >= 0),
                   1 + i / 10, 40,
                   c.v operator(extensions.+) a.v operator(extensions.+) b.v
            from generate_series(0, %(count)s - 1) i
            join centre c on c.n = (i + %(offset)s) %% %(centres)s
            join noise a on a.n = (i / %(centres)s) %% %(bank)s
            join noise b on b.n = %(bank)s + ((i / %(centres)s) * 7 + i + %(offset)s) %% %(bank)s
            """,
            {
                "workspace": workspace,
                "document": document[0],
                "words": WORDS,
                "nwords": len(WORDS),
                "count": count,
                "offset": offset,
                "centres": CENTRES,
                "bank": NOISE_BANK,
            },
        )
    return member, workspaces


def _scoped(conn: psycopg.Connection[Any], member: uuid.UUID, exact: bool) -> None:
    conn.execute(
        "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true),"
        " set_config('request.jwt.claim.sub', %s, true)",
        (json.dumps({"sub": str(member), "role": "authenticated"}), str(member)),
    )
    if exact:
        conn.execute("set local enable_indexscan = off")


Query = tuple[list[float], str]


def _search(conn: Any, member: uuid.UUID, workspace: uuid.UUID, query: Query, exact: bool) -> list[uuid.UUID]:
    _scoped(conn, member, exact)
    hits = search_chunks(
        conn, workspace_id=workspace, embedding=query[0], query=query[1], top_k=TOP_K, min_score=-1.0
    )
    conn.rollback()
    return [hit.chunk_id for hit in hits]


def _latencies(
    url: str, member: uuid.UUID, workspace: uuid.UUID, queries: list[Query], exact: bool
) -> list[float]:
    samples: list[float] = []
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        for index, query in enumerate(queries[:WARMUP] + queries):
            started = time.perf_counter()
            found = _search(conn, member, workspace, query, exact)
            elapsed = time.perf_counter() - started
            if len(found) != TOP_K:
                raise RuntimeError(f"the search returned {len(found)} rows, expected {TOP_K}")
            if index >= WARMUP:
                samples.append(elapsed)
    return samples


def _recall(url: str, member: uuid.UUID, workspace: uuid.UUID, queries: list[Query]) -> float:
    found = 0
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        for vector, _ in queries:
            by_index = set(_search(conn, member, workspace, (vector, ""), exact=False))
            by_scan = set(_search(conn, member, workspace, (vector, ""), exact=True))
            found += len(by_index & by_scan)
    return found / (TOP_K * len(queries))


def run(*, quick: bool = False) -> None:
    chunks = int(os.environ.get("ONEAI_BENCH_KNOWLEDGE_CHUNKS", QUICK_CHUNKS if quick else DEFAULT_CHUNKS))
    count = QUICK_QUERIES if quick else QUERIES
    print(
        f"knowledge_search: hybrid search over {chunks:,} chunks, HNSW vs exact scan ({count} queries, top {TOP_K})"
    )
    rng = random.Random(SEED)
    centres = [_gauss_vector(rng, 1.0) for _ in range(CENTRES)]
    with throwaway_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("drop index public.idx_document_chunks_embedding")
            started = time.perf_counter()
            member, (big, small) = _setup(conn, chunks, centres, rng)
            loaded = time.perf_counter() - started
            conn.execute("set maintenance_work_mem = '1GB'")
            started = time.perf_counter()
            conn.execute(INDEX)
            built = time.perf_counter() - started
            conn.execute("analyze public.document_chunks, public.documents")
        print(f"  loaded in {loaded:.1f} s; HNSW index (m 16, ef_construction 64) built in {built:.1f} s")
        # each query near one of the clusters, with two words of the list
        queries: list[Query] = [
            (
                [c + n for c, n in zip(centres[rng.randrange(CENTRES)], _gauss_vector(rng, 0.5), strict=True)],
                f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
            )
            for _ in range(count)
        ]
        rows: list[list[str]] = []
        for label, workspace in ((f"workspace of {chunks - chunks // 100:,} chunks", big),
                                 (f"workspace of {chunks // 100:,} chunks (1 %)", small)):  # fmt: skip
            rows.append(
                summary_row(f"{label}: HNSW", summarize(_latencies(url, member, workspace, queries, False)))
            )
            rows.append(
                summary_row(f"{label}: exact scan", summarize(_latencies(url, member, workspace, queries, True)))
            )
        print(table(SUMMARY_HEADERS, rows))
        print(f"  recall@{TOP_K} of the vector part, HNSW vs exact scan (big workspace): "
              f"{_recall(url, member, big, queries):.3f}")  # fmt: skip
