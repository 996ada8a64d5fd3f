"""Data layer of the user guide: the page index (written by the index step as the service), search and page
reads (anyone, under RLS), feedback (as its author or anonymously) and the feedback summary (service)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

# --- index (service) -----------------------------------------------------------------------------------
# Different lock key from the migrations runner's: two rebuilds at once (several `make dev`, tests) queue.
INDEX_LOCK = "select pg_advisory_xact_lock(hashtext('oneai.guide.index'))"
# A page is touched (and its updated_at moves) only when its content or its place changed.
UPSERT_PAGE = """
insert into public.guide_pages (slug, title, position, markdown, headings, body, plain_text, content_sha256)
values (%(slug)s, %(title)s, %(position)s, %(markdown)s, %(headings)s, %(body)s, %(plain_text)s,
        %(content_sha256)s)
on conflict (slug) do update set
  title = excluded.title, position = excluded.position, markdown = excluded.markdown,
  headings = excluded.headings, body = excluded.body, plain_text = excluded.plain_text,
  content_sha256 = excluded.content_sha256,
  updated_at = case when guide_pages.content_sha256 = excluded.content_sha256
                    then guide_pages.updated_at else now() end
where (guide_pages.content_sha256, guide_pages.position)
      is distinct from (excluded.content_sha256, excluded.position)"""
DELETE_OTHER_PAGES = "delete from public.guide_pages where slug <> all(%(slugs)s::text[])"
# Recomputed whole at every rebuild (a few hundred rows): always in step with the titles.
REPLACE_TITLE_TRIGRAMS = """
delete from public.guide_title_trigrams;
insert into public.guide_title_trigrams (slug, word, trigram, word_trigrams)
select p.slug, w, tri, cardinality(public.guide_word_trigrams(w))
from public.guide_pages p,
     unnest(public.guide_meaningful_words(p.title)) as w,
     unnest(public.guide_word_trigrams(w)) as tri"""


class PageWrite(BaseModel):
    slug: str
    title: str
    position: int
    markdown: str
    headings: str
    body: str
    plain_text: str
    content_sha256: str


def replace_pages(conn: Connection, pages: Sequence[PageWrite]) -> tuple[int, int]:
    """Make the index hold exactly `pages`; returns (pages written, pages removed)."""
    conn.execute(INDEX_LOCK)
    written = 0
    with conn.cursor() as cursor:
        for page in pages:
            cursor.execute(UPSERT_PAGE, page.model_dump())
            written += cursor.rowcount
    removed = conn.execute(DELETE_OTHER_PAGES, {"slugs": [p.slug for p in pages]}).rowcount
    conn.execute(REPLACE_TITLE_TRIGRAMS)
    return written, removed


# --- search and reads (anon or authenticated, under RLS) ---------------------------------------------
# Snippets mark matches with private-use characters; the service escapes the text and turns them into
# <mark> tags, so the snippet is safe to show as HTML whatever the page says.
MARK_START = "\ue000"
MARK_STOP = "\ue001"
HEADLINE_OPTIONS = f'StartSel={MARK_START}, StopSel={MARK_STOP}, MaxWords=35, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "'

# Full text first: title (A) above headings (B) above body (C), `ts_rank`, plus a boost for a title that
# the words of the query spell out. Pages with every word of the query (`websearch_to_tsquery`: phrases,
# `or`, `-word`) when there are any; otherwise pages with any of its words, so that one extra word in a
# question does not hide the page. When full text finds nothing at all (misspelt words), the titles closest
# to the query by word trigrams answer instead. A title's closeness: for each meaningful query word its
# best trigram similarity among the title's words, averaged over the query words. Snippets are made only
# for the page of results returned.
SEARCH = """
with query as (
  select websearch_to_tsquery('english'::regconfig, %(q)s) as all_words,
         -- the same words joined by "or" (PostgreSQL quotes the lexemes in the text it gives)
         replace(plainto_tsquery('english'::regconfig, %(q)s)::text, ' & ', ' | ')::tsquery as any_word
),
chosen as (
  select case when exists (select 1 from public.guide_pages p where p.search @@ query.all_words)
              then query.all_words else query.any_word end as tsq
  from query
),
query_words as (select w from unnest(public.guide_meaningful_words(%(q)s)) as w),
query_trigrams as (
  select qw.w as word, tri, count(*) over (partition by qw.w) as word_trigrams
  from query_words qw, unnest(public.guide_word_trigrams(qw.w)) as tri
),
word_pairs as (
  select t.slug, q.word as query_word, count(*) as shared,
         max(q.word_trigrams) + max(t.word_trigrams) - count(*) as distinct_trigrams
  from query_trigrams q join public.guide_title_trigrams t on t.trigram = q.tri
  group by t.slug, q.word, t.word
),
title_match as (
  select slug, sum(best) / (select count(*) from query_words) as score
  from (
    select slug, query_word, max(shared::real / distinct_trigrams) as best from word_pairs group by slug, query_word
  ) per_word
  group by slug
),
full_text as (
  select p.slug, p.position, ts_rank(p.search, chosen.tsq) + 0.5 * coalesce(tm.score, 0) as score,
         chosen.tsq
  from public.guide_pages p cross join chosen left join title_match tm on tm.slug = p.slug
  where p.search @@ chosen.tsq
),
by_title as (
  select p.slug, p.position, tm.score, null::tsquery as tsq
  from title_match tm join public.guide_pages p on p.slug = tm.slug
  where not exists (select 1 from full_text) and tm.score >= %(min_title_similarity)s
),
ranked as (
  select * from full_text union all select * from by_title
  order by score desc, position, slug
  offset %(offset)s limit %(limit)s
)
select p.slug, p.title,
       case when r.tsq is null then left(p.body, %(lead_chars)s)
            else ts_headline('english'::regconfig, p.plain_text, r.tsq, %(headline_options)s) end as snippet
from ranked r join public.guide_pages p on p.slug = r.slug
order by r.score desc, r.position, r.slug"""

# A page found by its title alone shows the start of its body (cut at a word by the service).
LEAD_CHARS = 240

PAGE = "select slug, title, markdown, updated_at from public.guide_pages where slug = %(slug)s"


class SearchRow(BaseModel):
    slug: str
    title: str
    snippet: str


class PageRow(BaseModel):
    slug: str
    title: str
    markdown: str
    updated_at: datetime


def search_pages(
    conn: Connection, q: str, *, offset: int, limit: int, min_title_similarity: float
) -> list[SearchRow]:
    with conn.cursor(row_factory=class_row(SearchRow)) as cursor:
        params = {
            "q": q,
            "offset": offset,
            "limit": limit,
            "min_title_similarity": min_title_similarity,
            "headline_options": HEADLINE_OPTIONS,
            "lead_chars": LEAD_CHARS,
        }
        return cursor.execute(SEARCH, params).fetchall()


def get_page(conn: Connection, slug: str) -> PageRow | None:
    with conn.cursor(row_factory=class_row(PageRow)) as cursor:
        return cursor.execute(PAGE, {"slug": slug}).fetchone()


# --- feedback (anon: user_id null; authenticated: the caller's id; RLS checks both) -------------------
# Inserts only when the page exists, so an unknown slug writes nothing (the service answers 404). No
# RETURNING: neither role may read feedback back.
INSERT_FEEDBACK = """
insert into public.guide_feedback (id, page_slug, user_id, helpful, comment)
select %(id)s, p.slug, %(user_id)s, %(helpful)s, %(comment)s
from public.guide_pages p where p.slug = %(slug)s"""


def insert_feedback(
    conn: Connection, *, feedback_id: UUID, slug: str, user_id: UUID | None, helpful: bool, comment: str | None
) -> bool:
    """True when stored; False when no page has this slug."""
    params = {"id": feedback_id, "slug": slug, "user_id": user_id, "helpful": helpful, "comment": comment}
    return conn.execute(INSERT_FEEDBACK, params).rowcount == 1


# --- feedback summary (service: admins) ----------------------------------------------------------------
# Every page of the guide, and any page that was removed but has feedback, with its counts and its latest
# comments; the pages readers find least helpful first.
FEEDBACK_SUMMARY = """
with counts as (
  select page_slug as slug,
         count(*) filter (where helpful) as helpful,
         count(*) filter (where not helpful) as not_helpful,
         max(created_at) as last_feedback_at
  from public.guide_feedback
  group by page_slug
),
pages as (
  select coalesce(p.slug, c.slug) as slug, p.title, p.position,
         coalesce(c.helpful, 0) as helpful, coalesce(c.not_helpful, 0) as not_helpful, c.last_feedback_at
  from public.guide_pages p full join counts c on c.slug = p.slug
)
select pages.slug, pages.title, pages.helpful, pages.not_helpful, pages.last_feedback_at,
       coalesce(latest.comments, '[]'::jsonb) as latest_comments
from pages
left join lateral (
  select jsonb_agg(jsonb_build_object(
           'id', f.id, 'helpful', f.helpful, 'comment', f.comment, 'user_id', f.user_id,
           'created_at', f.created_at) order by f.created_at desc, f.id desc) as comments
  from (
    select id, helpful, comment, user_id, created_at from public.guide_feedback
    where page_slug = pages.slug and comment is not null
    order by created_at desc, id desc
    limit %(comments_per_page)s
  ) f
) latest on true
order by pages.not_helpful desc, pages.helpful + pages.not_helpful desc, pages.position nulls last, pages.slug"""


class FeedbackCommentRow(BaseModel):
    id: UUID
    helpful: bool
    comment: str
    user_id: UUID | None
    created_at: datetime


class FeedbackSummaryRow(BaseModel):
    slug: str
    title: str | None
    helpful: int
    not_helpful: int
    last_feedback_at: datetime | None
    latest_comments: list[FeedbackCommentRow]


def feedback_summary(conn: Connection, *, comments_per_page: int) -> list[FeedbackSummaryRow]:
    with conn.cursor(row_factory=class_row(FeedbackSummaryRow)) as cursor:
        return cursor.execute(FEEDBACK_SUMMARY, {"comments_per_page": comments_per_page}).fetchall()
