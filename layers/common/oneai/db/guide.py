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
# The words search corrects misspellings to, rebuilt from the pages in this transaction (migration
# 20261123010000_guide_vocabulary.sql): a search never sees pages and vocabulary out of step.
REFRESH_VOCABULARY = "select public.guide_refresh_vocabulary()"


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
    conn.execute(REFRESH_VOCABULARY)
    return written, removed


# --- search and reads (anon or authenticated, under RLS) ---------------------------------------------
# Snippets mark matches with private-use characters; the service escapes the text and turns them into
# <mark> tags, so the snippet is safe to show as HTML whatever the page says.
MARK_START = "\ue000"
MARK_STOP = "\ue001"
HEADLINE_OPTIONS = f'StartSel={MARK_START}, StopSel={MARK_STOP}, MaxWords=35, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "'

# The query first, word by word: a word of at least `one_edit_from` letters that the guide does not hold
# (no vocabulary word has its English stem; stop words are left alone) is replaced by the closest
# vocabulary word within 1 edit (2 edits from `two_edits_from` letters; a swap of neighbouring letters is
# one edit). Candidates share trigrams with the word: an edit changes at most 3 of a word's trigrams (a
# swap 4), so a word sharing fewer is too far and is not measured. The closest: fewest edits, then the word
# the guide uses most (in any form, then in this form), then most trigrams in common. The corrected words
# go back in place, so phrases, `or` and `-word` keep their meaning; everything below searches that text.
#
# Then full text: title (A) above headings (B) above body (C), `ts_rank`, plus a boost for a title that the
# words of the query spell out. Pages with every word of the query (`websearch_to_tsquery`: phrases, `or`,
# `-word`) when there are any; otherwise pages with any of its words, so that one extra word in a question
# does not hide the page. When full text finds nothing at all, the titles closest to the query by word
# trigrams answer instead. A title's closeness: for each meaningful query word its best trigram similarity
# among the title's words, averaged over the query words. Snippets are made only for the page of results
# returned. One row at least: the searched text with no page when nothing matches.
SEARCH = """
with typed as (
  -- the query as runs of letters and runs of anything else, in order
  select m.n, m.token[1] as token, lower(m.token[1]) as word
  from regexp_matches(%(q)s, '[[:alpha:]]+|[^[:alpha:]]+', 'g') with ordinality as m(token, n)
),
unknown as (
  select distinct t.word, case when char_length(t.word) >= %(two_edits_from)s then 2 else 1 end as max_edits
  from typed t
  where t.word ~ '^[[:alpha:]]+$' and char_length(t.word) >= %(one_edit_from)s
    and ts_lexize('english_stem'::regdictionary, t.word) <> '{}'
    and not exists (
      select 1 from public.guide_vocabulary v
      where v.lexeme = (ts_lexize('english_stem'::regdictionary, t.word))[1])
),
unknown_trigrams as (
  select u.word, u.max_edits, tri, count(*) over (partition by u.word) as word_trigrams
  from unknown u, unnest(public.guide_word_trigrams(u.word)) as tri
),
candidates as (
  select q.word, v.word as candidate, max(q.max_edits) as max_edits,
         count(*)::real / (max(q.word_trigrams) + max(v.word_trigrams) - count(*)) as similarity
  from unknown_trigrams q join public.guide_vocabulary_trigrams v on v.trigram = q.tri
  where abs(v.word_length - char_length(q.word)) <= q.max_edits
  group by q.word, v.word
  having count(*) >= max(q.word_trigrams) - 4 * max(q.max_edits)
),
corrections as (
  select distinct on (c.word) c.word, c.candidate
  from candidates c
  join public.guide_vocabulary v on v.word = c.candidate
  cross join lateral (select public.guide_edit_distance(c.word, c.candidate) as edits) d
  where d.edits <= c.max_edits
  order by c.word, d.edits, v.lexeme_occurrences desc, v.occurrences desc, c.similarity desc, c.candidate
),
searched as (
  select coalesce(string_agg(
           case when c.candidate is null then t.token
                -- written as the reader wrote the word: QUOTTA -> QUOTA, Quotta -> Quota
                when t.token = upper(t.token) then upper(c.candidate)
                when t.token ~ '^[[:upper:]]' then upper(left(c.candidate, 1)) || substr(c.candidate, 2)
                else c.candidate end, '' order by t.n), %(q)s) as q,
         count(c.candidate) > 0 as corrected
  from typed t left join corrections c on c.word = t.word
),
-- Materialized, and read through scalar subqueries below: each tsquery is computed once (not again for
-- every page compared with it), and the text-search index can take it as a value.
query as materialized (
  select websearch_to_tsquery('english'::regconfig, s.q) as all_words,
         -- the same words joined by "or" (PostgreSQL quotes the lexemes in the text it gives)
         replace(plainto_tsquery('english'::regconfig, s.q)::text, ' & ', ' | ')::tsquery as any_word
  from searched s
),
chosen as materialized (
  select case when exists (select 1 from public.guide_pages p where p.search @@ (select all_words from query))
              then (select all_words from query) else (select any_word from query) end as tsq
),
query_words as (select w from searched s, unnest(public.guide_meaningful_words(s.q)) as w),
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
  select p.slug, p.position, ts_rank(p.search, (select tsq from chosen)) + 0.5 * coalesce(tm.score, 0) as score,
         (select tsq from chosen) as tsq
  from public.guide_pages p left join title_match tm on tm.slug = p.slug
  where p.search @@ (select tsq from chosen)
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
select s.q as searched, s.corrected, p.slug, p.title,
       case when r.tsq is null then left(p.body, %(lead_chars)s)
            else ts_headline('english'::regconfig, p.plain_text, r.tsq, %(headline_options)s) end as snippet
from searched s
left join (ranked r join public.guide_pages p on p.slug = r.slug) on true
order by r.score desc, r.position, r.slug"""

# A page found by its title alone shows the start of its body (cut at a word by the service).
LEAD_CHARS = 240

PAGE = "select slug, title, markdown, updated_at from public.guide_pages where slug = %(slug)s"


class SearchRow(BaseModel):
    slug: str
    title: str
    snippet: str


class _SearchOutputRow(BaseModel):
    searched: str
    corrected: bool
    slug: str | None
    title: str | None
    snippet: str | None


class SearchAnswer(BaseModel):
    rows: list[SearchRow]
    # The text searched, when a misspelt word of the query was corrected; None when searched as typed.
    corrected_query: str | None


class PageRow(BaseModel):
    slug: str
    title: str
    markdown: str
    updated_at: datetime


def search_pages(
    conn: Connection,
    q: str,
    *,
    offset: int,
    limit: int,
    min_title_similarity: float,
    one_edit_from: int,
    two_edits_from: int,
) -> SearchAnswer:
    with conn.cursor(row_factory=class_row(_SearchOutputRow)) as cursor:
        params = {
            "q": q,
            "offset": offset,
            "limit": limit,
            "min_title_similarity": min_title_similarity,
            "one_edit_from": one_edit_from,
            "two_edits_from": two_edits_from,
            "headline_options": HEADLINE_OPTIONS,
            "lead_chars": LEAD_CHARS,
        }
        output = cursor.execute(SEARCH, params).fetchall()
    rows = [
        SearchRow(slug=r.slug, title=r.title, snippet=r.snippet or "")
        for r in output
        if r.slug is not None and r.title is not None
    ]
    return SearchAnswer(rows=rows, corrected_query=output[0].searched if output and output[0].corrected else None)


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
