"""Data layer of the knowledge base's search (issue 24): the hybrid search of a workspace's chunks, one
SQL statement run as the caller (RLS narrows it to the caller's workspaces; the statement also names
the workspace, so another tenant's rows are never candidates).

The statement fuses two ranked lists by reciprocal rank (RRF, k = 60):
- the vector neighbours: the workspace's `candidates` chunks nearest to the query vector (cosine);
- the full-text matches: the workspace's chunks matching `websearch_to_tsquery('english', query)`, best
  `ts_rank_cd` first, at most `candidates` of them (through `oneai_private.workspace_text_matches`, which
  checks the membership itself and so can use the GIN index, which RLS would not let `@@` use).
Rows come out by fused rank (`rrf`, highest first). Each row's `score` is its cosine similarity to the
query vector (1 - cosine distance, in [-1, 1]; the same whether the chunk came from the vector list, the
text list or both): it is what `min_score` compares, so a threshold means the same thing for every
query, which an RRF value (it depends only on ranks) would not. Since the vector list holds the
`candidates >= top_k` most similar chunks, fewer than `top_k` rows come out only when fewer of the
workspace's chunks reach `min_score`.

Filtered HNSW (docs/architecture.md "The knowledge base"): the HNSW index walks `hnsw.ef_search`
neighbours over all tenants, then the workspace filter drops the others' rows, so a workspace holding
1 % of the chunks would get about 1 % of `ef_search` rows. Three things keep its `top_k` whole, on
pgvector 0.6 (the embedded server) and 0.8 (Supabase) alike:
1. `hnsw.ef_search` is raised for the transaction (at least the candidate count);
2. on pgvector >= 0.8, `hnsw.iterative_scan = relaxed_order`: the index keeps walking until the filter
   has let enough rows through (0.6 has no such setting; it is set only when the extension has it);
3. inside the statement, when the index gave fewer than `candidates` rows, an exact scan of the
   workspace's chunks (found by its btree index, then sorted by distance) replaces them: a small
   workspace costs a sort of its own rows; a big one is served by the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from psycopg.rows import class_row

from oneai.db.connection import Connection

EMBEDDING_DIMENSIONS: Final = 1536
RRF_K: Final = 60
MAX_TOP_K: Final = 100
# Each list's length: enough that a chunk ranked well in one list and poorly in the other still fuses.
MIN_CANDIDATES: Final = 40
CANDIDATES_PER_RESULT: Final = 4
# pgvector caps ef_search at 1000; 100 keeps recall@10 over 0.95 at 100k chunks (bench/knowledge_search.py).
MIN_EF_SEARCH: Final = 100
# The full-text list ranks at most this many matching chunks (a bounded cost for common words).
MAX_TEXT_MATCHES: Final = 1000
MAX_EF_SEARCH: Final = 1000


@dataclass(frozen=True, slots=True)
class KnowledgeHit:
    chunk_id: UUID
    document_id: UUID
    filename: str
    page: int | None
    index: int
    text: str
    # Cosine similarity to the query vector: what min_score compares.
    score: float
    # The reciprocal-rank fusion value: what orders the rows.
    rrf: float
    # The document's media type (a chat stream's `source-document` part names it).
    media_type: str = "application/octet-stream"


# Transaction-local: the index's search width, and pgvector 0.8's iterative scan where the installed
# extension has it (the CASE does not call set_config on 0.6, where the setting does not exist).
INDEX_SETTINGS = """
select set_config('hnsw.ef_search', %(ef_search)s, true),
       case when exists (
         select 1 from pg_catalog.pg_extension
         where extname = 'vector'
           and (regexp_match(extversion, '^(\\d+)\\.(\\d+)'))::int[] >= array[0, 8]
       ) then set_config('hnsw.iterative_scan', 'relaxed_order', true) end"""

# A chatbot's search (`chatbot_id` not null) keeps the chunks of its `ready` documents, read from
# chatbot_documents in the statement itself (never a list the application fetched first).
_IN_SCOPE = """c.workspace_id = %(workspace_id)s
    and (%(document_ids)s::uuid[] is null or c.document_id = any(%(document_ids)s::uuid[]))
    and (%(chatbot_id)s::uuid is null or c.document_id in (
      select cd.document_id from public.chatbot_documents cd
      join public.documents d on d.id = cd.document_id and d.workspace_id = cd.workspace_id
      where cd.chatbot_id = %(chatbot_id)s::uuid and cd.workspace_id = %(workspace_id)s and d.status = 'ready'))"""
_DISTANCE = "(c.embedding operator(extensions.<=>) %(embedding)s::extensions.vector)"

SEARCH = f"""
with indexed as materialized (
  -- The HNSW index (or whatever the planner finds cheaper), filtered to the workspace.
  select c.id, {_DISTANCE} as distance
  from public.document_chunks c
  where {_IN_SCOPE}
  order by {_DISTANCE}
  limit %(candidates)s
),
scanned as materialized (
  -- Only when the index came back short: the workspace's chunks by its btree index. Materialized, so
  -- the sort below is an exact sort of these rows, never the HNSW index again.
  select c.id, {_DISTANCE} as distance
  from public.document_chunks c
  where {_IN_SCOPE}
    and (select count(*) from indexed) < %(candidates)s
),
vector_hits as (
  select id, distance, row_number() over (order by distance, id) as rank
  from (
    select id, distance from indexed where (select count(*) from indexed) >= %(candidates)s
    union all
    (select id, distance from scanned order by distance, id limit %(candidates)s)
  ) v
),
text_matches as materialized (
  -- Through the GIN index: a security definer function that checks the caller's membership itself
  -- (under RLS the `@@` operator, not leakproof, cannot use the index; see the migration). At most
  -- MAX_TEXT_MATCHES matching chunks are ranked: a query of common words costs a bounded scan.
  select id, text_rank
  from oneai_private.workspace_text_matches(
    %(workspace_id)s, %(query)s, %(document_ids)s::uuid[], %(text_matches)s, %(chatbot_id)s::uuid)
),
text_hits as (
  select t.id, {_DISTANCE} as distance, t.rank
  from (
    -- rank(), not row_number(): chunks the full text scores equally share a rank, so a tie is never
    -- broken by their random ids against the vector list's order.
    select id, rank() over (order by text_rank desc) as rank
    from text_matches order by rank, id limit %(candidates)s
  ) t
  join public.document_chunks c on c.id = t.id
),
best as materialized (
  select id, min(distance) as distance, sum(1.0 / ({RRF_K} + rank)) as rrf
  from (select id, distance, rank from vector_hits union all select id, distance, rank from text_hits) hits
  group by id
  having 1 - min(distance) >= %(min_score)s
  order by rrf desc, distance, id
  limit %(top_k)s
)
select c.id as chunk_id, c.document_id, d.filename, c.page, c.chunk_index as index, c.text,
       (1 - b.distance)::float8 as score, b.rrf::float8 as rrf, d.media_type
from best b
join public.document_chunks c on c.id = b.id
join public.documents d on d.id = c.document_id
order by b.rrf desc, b.distance, b.id"""


def candidate_count(top_k: int) -> int:
    return max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * top_k)


def vector_literal(embedding: Sequence[float]) -> str:
    """pgvector's text form, `[x,y,...]`; the statement casts it."""
    if len(embedding) != EMBEDDING_DIMENSIONS:
        raise ValueError(f"an embedding has {EMBEDDING_DIMENSIONS} dimensions, not {len(embedding)}")
    return "[" + ",".join(repr(float(x)) for x in embedding) + "]"


def search_params(
    *,
    workspace_id: UUID,
    embedding: Sequence[float],
    query: str,
    top_k: int,
    min_score: float,
    document_ids: Sequence[UUID] | None = None,
    chatbot_id: UUID | None = None,
) -> dict[str, object]:
    """The parameters of SEARCH (`chatbot_id`: only that chatbot's ready documents)."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k is between 1 and {MAX_TOP_K}")
    return {
        "workspace_id": workspace_id,
        "document_ids": None if document_ids is None else list(document_ids),
        "chatbot_id": chatbot_id,
        "embedding": vector_literal(embedding),
        "query": query,
        "candidates": candidate_count(top_k),
        "text_matches": MAX_TEXT_MATCHES,
        "min_score": min_score,
        "top_k": top_k,
    }


def index_settings_params(top_k: int) -> dict[str, object]:
    return {"ef_search": str(min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, candidate_count(top_k))))}


def set_index_settings(conn: Connection, top_k: int) -> None:
    """The index settings of a search, for the rest of the transaction."""
    conn.execute(INDEX_SETTINGS, index_settings_params(top_k))


def search_batch(params: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """The index settings and the search, for `Database.user_read` (one round trip); `params` from
    `search_params`."""
    top_k = params["top_k"]
    assert isinstance(top_k, int)
    return [(INDEX_SETTINGS, index_settings_params(top_k)), (SEARCH, params)]


def hits_of(rows: Sequence[dict[str, object]]) -> list[KnowledgeHit]:
    return [KnowledgeHit(**row) for row in rows]  # type: ignore[arg-type]


def search_chunks(
    conn: Connection,
    *,
    workspace_id: UUID,
    embedding: Sequence[float],
    query: str,
    top_k: int,
    min_score: float,
    document_ids: Sequence[UUID] | None = None,
) -> list[KnowledgeHit]:
    """The workspace's `top_k` chunks for a query (its vector and its text), best first; sets the index
    settings for the rest of the transaction."""
    params = search_params(
        workspace_id=workspace_id,
        embedding=embedding,
        query=query,
        top_k=top_k,
        min_score=min_score,
        document_ids=document_ids,
    )
    set_index_settings(conn, top_k)
    with conn.cursor(row_factory=class_row(KnowledgeHit)) as cur:
        return cur.execute(SEARCH, params).fetchall()
