-- The chunks' full-text index is written directly, never through GIN's pending list (issue 25 item 7:
-- retrieval's share of a chatbot reply's first token).
--
-- With `fastupdate` on (PostgreSQL's default), new entries wait in an unsorted pending list (up to
-- gin_pending_list_limit, 4 MB) until a vacuum or an insert past the limit merges them, and every search
-- scans the whole list meanwhile: after the ingest of a large document, each chatbot turn's full-text half
-- took 3.7 ms instead of 0.6 ms at 100,000 chunks (the search statement 7.4 ms instead of 3.4-3.9 ms,
-- measured with bench/chatbot_turn.py's data). Searches wait in front of a visitor; the ingest runs in the
-- background and can pay the index update per row.
alter index public.idx_document_chunks_tsv set (fastupdate = off);

-- Entries already pending go into the index now.
select gin_clean_pending_list('public.idx_document_chunks_tsv'::regclass);
