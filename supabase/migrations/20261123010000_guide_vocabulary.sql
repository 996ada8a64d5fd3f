-- Per-word typo tolerance for the user guide's search: the guide's own vocabulary, so that a misspelt word
-- ("quotta", "subscirption") is corrected to a word the guide holds before the full-text search runs.
--
-- The vocabulary is every word of the indexed pages (title, headings, body), English stop words left out,
-- with its English stem (a query word whose stem is here is a word the guide holds and is never
-- corrected) and how many pages hold it. Candidates for an unknown word are found by word trigrams (an
-- indexed join, as for the titles: pgserver ships without pg_trgm) and accepted by edit distance
-- (Damerau-Levenshtein, optimal string alignment: a swap of two neighbouring letters is one edit).
-- The index step refreshes it in the transaction that rewrites the pages; this migration fills it once
-- from the pages already indexed.

create table public.guide_vocabulary (
  word text primary key,
  lexeme text not null,             -- its English stem, as full text stems the pages and the query
  -- How often the guide uses the word in any form (its lexeme) and in this form: between equally close
  -- corrections, the commoner word is the likelier one meant.
  lexeme_occurrences integer not null,
  occurrences integer not null
);

create index idx_guide_vocabulary_lexeme on public.guide_vocabulary (lexeme);

-- Every trigram of every vocabulary word, with the word's length and trigram count beside it, so a search
-- finds and scores candidates from this table alone.
create table public.guide_vocabulary_trigrams (
  trigram text not null,
  word text not null,
  word_length integer not null,
  word_trigrams integer not null,
  primary key (trigram, word)
);

-- Edit distance with adjacent transpositions (optimal string alignment), two rows of the table kept.
-- Words only: null past 100 letters, as the work grows with the product of the lengths and anyone may
-- call it (the search runs as anon; vocabulary words have at most 50 letters).
create function public.guide_edit_distance(a text, b text)
returns integer
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  x text[] := string_to_array(a, null);
  y text[] := string_to_array(b, null);
  m integer := coalesce(array_length(x, 1), 0);
  n integer := coalesce(array_length(y, 1), 0);
  before_previous integer[];
  previous integer[];
  cur integer[];
begin
  if m > 100 or n > 100 then
    return null;
  end if;
  if m = 0 or n = 0 then
    return greatest(m, n);
  end if;
  -- cur[j + 1] is the distance between the first i letters of a and the first j letters of b
  previous := array(select generate_series(0, n));
  for i in 1..m loop
    cur := array[i] || array_fill(0, array[n]);
    for j in 1..n loop
      cur[j + 1] := least(previous[j + 1] + 1, cur[j] + 1, previous[j] + (x[i] <> y[j])::integer);
      if i > 1 and j > 1 and x[i] = y[j - 1] and x[i - 1] = y[j] then
        cur[j + 1] := least(cur[j + 1], before_previous[j - 1] + 1);
      end if;
    end loop;
    before_previous := previous;
    previous := cur;
  end loop;
  return previous[n + 1];
end
$$;

-- Rebuild the vocabulary from the pages (a few thousand rows); readers see the old one until commit.
create function public.guide_refresh_vocabulary()
returns void
language sql volatile
set search_path = ''
as $$
  delete from public.guide_vocabulary_trigrams;
  delete from public.guide_vocabulary;
  insert into public.guide_vocabulary (word, lexeme, lexeme_occurrences, occurrences)
  select word, lexeme, sum(count(*)) over (partition by lexeme), count(*)
  from (
    select w as word, (ts_lexize('pg_catalog.english_stem'::regdictionary, w))[1] as lexeme
    from public.guide_pages p,
         regexp_split_to_table(lower(concat_ws(' ', p.title, p.headings, p.body)), '[^[:alpha:]]+') as w
    where char_length(w) between 2 and 50
  ) words
  where lexeme is not null  -- stop words have none
  group by word, lexeme;
  insert into public.guide_vocabulary_trigrams (trigram, word, word_length, word_trigrams)
  select tri, v.word, char_length(v.word), count(*) over (partition by v.word)
  from public.guide_vocabulary v, unnest(public.guide_word_trigrams(v.word)) as tri;
$$;

alter table public.guide_vocabulary enable row level security;
alter table public.guide_vocabulary_trigrams enable row level security;

revoke all on public.guide_vocabulary, public.guide_vocabulary_trigrams from anon, authenticated;
grant select on public.guide_vocabulary, public.guide_vocabulary_trigrams to anon, authenticated;
create policy guide_vocabulary_read on public.guide_vocabulary for select to anon, authenticated using (true);
create policy guide_vocabulary_trigrams_read on public.guide_vocabulary_trigrams for select
  to anon, authenticated using (true);

revoke execute on function public.guide_edit_distance(text, text) from public;
grant execute on function public.guide_edit_distance(text, text) to anon, authenticated, service_role;
-- Only the index step (the tables' owner) rebuilds the vocabulary.
revoke execute on function public.guide_refresh_vocabulary() from public, anon, authenticated;

select public.guide_refresh_vocabulary();
