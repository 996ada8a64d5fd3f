-- The user guide (docs/guide/*.md) as a searchable index, and readers' feedback on its pages.
--
-- The pages are written by the index step (`python -m oneai.guide.index`, run after the migrations)
-- from the markdown in the repository; the docs function only reads them. Search is PostgreSQL full
-- text with weights: title A, headings B, body C. Typo tolerance compares word trigrams of the query
-- with those of the titles (the measure pg_trgm's `similarity` uses), written in plain SQL here because
-- the embedded PostgreSQL of tests and `make dev` (pgserver) ships without the pg_trgm extension: one
-- implementation, tested where it runs.

create table public.guide_pages (
  slug text primary key check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and char_length(slug) <= 100),
  title text not null check (char_length(title) between 1 and 200),
  position integer not null,
  markdown text not null,
  headings text not null default '',
  body text not null default '',
  -- headings and body in reading order: what search snippets are cut from
  plain_text text not null default '',
  -- sha256 of title + markdown: a rebuild touches a page (and its updated_at) only when it changed.
  content_sha256 text not null,
  search tsvector generated always as (
    setweight(to_tsvector('english'::regconfig, title), 'A')
    || setweight(to_tsvector('english'::regconfig, headings), 'B')
    || setweight(to_tsvector('english'::regconfig, body), 'C')
  ) stored,
  updated_at timestamptz not null default now()
);

create index idx_guide_pages_search on public.guide_pages using gin (search);

-- No foreign key to guide_pages: feedback on a page later removed from the guide is kept for the
-- summary. The insert itself checks that the page exists (404 otherwise).
create table public.guide_feedback (
  id uuid primary key default gen_random_uuid(),
  page_slug text not null,
  -- null for anonymous feedback; erased with the account.
  user_id uuid references public.users (id) on delete cascade,
  helpful boolean not null,
  comment text check (comment is null or char_length(comment) between 1 and 2000),
  created_at timestamptz not null default now()
);

create index idx_guide_feedback_page on public.guide_feedback (page_slug, created_at desc);
create index idx_guide_feedback_user on public.guide_feedback (user_id) where user_id is not null;

-- The distinct trigrams of one lower-cased word, padded as pg_trgm pads it (two spaces before, one after).
create function public.guide_word_trigrams(word text)
returns text[]
language sql immutable strict parallel safe
set search_path = ''
as $$
  select coalesce(array_agg(distinct substr(padded, i, 3)), '{}')
  from (select '  ' || lower(word) || ' ' as padded) w,
       generate_series(1, char_length(w.padded) - 2) as i
$$;

-- Shared trigrams over all trigrams of two words (0..1), pg_trgm's `similarity` for single words.
create function public.guide_word_similarity(a text, b text)
returns real
language sql immutable strict parallel safe
set search_path = ''
as $$
  select case when cardinality(x.t || y.t) = 0 then 0::real else
    (select count(*) from unnest(x.t) as e where e = any (y.t))::real
    / (select count(distinct e) from unnest(x.t || y.t) as e)::real
  end
  from (select public.guide_word_trigrams(a) as t) x, (select public.guide_word_trigrams(b) as t) y
$$;

-- The words of a phrase that carry meaning: letters and digits, English stop words left out.
create function public.guide_meaningful_words(phrase text)
returns text[]
language sql stable strict parallel safe
set search_path = ''
as $$
  select coalesce(array_agg(w), '{}')
  from regexp_split_to_table(lower(phrase), '[^[:alnum:]]+') as w
  where char_length(w) >= 2 and pg_catalog.ts_lexize('pg_catalog.english_stem'::regdictionary, w) <> '{}'
$$;

-- How well a (possibly misspelt) query names a title: for each meaningful query word its best match
-- among the title's words, averaged. 1 is every word spelt as in the title.
create function public.guide_title_similarity(query text, title text)
returns real
language sql stable strict parallel safe
set search_path = ''
as $$
  select coalesce(avg(best), 0)::real
  from (
    select max(public.guide_word_similarity(q, t)) as best
    from unnest(public.guide_meaningful_words(query)) as q,
         unnest(public.guide_meaningful_words(title)) as t
    group by q
  ) per_word
$$;

-- Privileges and RLS: anyone may read the guide; anyone may leave feedback, as themselves or as nobody;
-- nobody but the service reads feedback.
alter table public.guide_pages enable row level security;
alter table public.guide_feedback enable row level security;

revoke all on public.guide_pages, public.guide_feedback from anon, authenticated;
grant select on public.guide_pages to anon, authenticated;
grant insert (id, page_slug, user_id, helpful, comment) on public.guide_feedback to anon, authenticated;
revoke execute on function public.guide_word_trigrams(text), public.guide_word_similarity(text, text),
  public.guide_meaningful_words(text), public.guide_title_similarity(text, text) from public;
grant execute on function public.guide_word_trigrams(text), public.guide_word_similarity(text, text),
  public.guide_meaningful_words(text), public.guide_title_similarity(text, text)
  to anon, authenticated, service_role;

create policy guide_pages_read on public.guide_pages for select to anon, authenticated using (true);
create policy guide_feedback_insert_anonymous on public.guide_feedback for insert to anon
  with check (user_id is null);
create policy guide_feedback_insert_own on public.guide_feedback for insert to authenticated
  with check (user_id = (select auth.uid()));
