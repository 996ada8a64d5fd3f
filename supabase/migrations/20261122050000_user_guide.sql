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

-- The words of a phrase that carry meaning: letters and digits, English stop words left out.
create function public.guide_meaningful_words(phrase text)
returns text[]
language sql stable strict parallel safe
set search_path = ''
as $$
  select coalesce(array_agg(distinct w), '{}')
  from regexp_split_to_table(lower(phrase), '[^[:alnum:]]+') as w
  where char_length(w) >= 2 and pg_catalog.ts_lexize('pg_catalog.english_stem'::regdictionary, w) <> '{}'
$$;

-- Every trigram of every meaningful word of each title, written by the index step beside its page, so a
-- search compares the query's few trigrams with these by an indexed join instead of computing them per
-- page. Similarity of two words = shared trigrams / all their distinct trigrams (pg_trgm's measure).
create table public.guide_title_trigrams (
  slug text not null references public.guide_pages (slug) on delete cascade,
  word text not null,
  trigram text not null,
  word_trigrams integer not null,  -- how many distinct trigrams `word` has
  primary key (slug, word, trigram)
);

create index idx_guide_title_trigrams_trigram on public.guide_title_trigrams (trigram);

-- Privileges and RLS: anyone may read the guide; anyone may leave feedback, as themselves or as nobody;
-- nobody but the service reads feedback.
alter table public.guide_pages enable row level security;
alter table public.guide_feedback enable row level security;
alter table public.guide_title_trigrams enable row level security;

revoke all on public.guide_pages, public.guide_feedback, public.guide_title_trigrams from anon, authenticated;
grant select on public.guide_pages, public.guide_title_trigrams to anon, authenticated;
grant insert (id, page_slug, user_id, helpful, comment) on public.guide_feedback to anon, authenticated;
revoke execute on function public.guide_word_trigrams(text), public.guide_meaningful_words(text) from public;
grant execute on function public.guide_word_trigrams(text), public.guide_meaningful_words(text)
  to anon, authenticated, service_role;

create policy guide_pages_read on public.guide_pages for select to anon, authenticated using (true);
create policy guide_title_trigrams_read on public.guide_title_trigrams for select to anon, authenticated
  using (true);
create policy guide_feedback_insert_anonymous on public.guide_feedback for insert to anon
  with check (user_id is null);
create policy guide_feedback_insert_own on public.guide_feedback for insert to authenticated
  with check (user_id = (select auth.uid()));
