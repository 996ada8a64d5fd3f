-- The knowledge ingest (issue 24): what embedding a document cost, recorded by the ingest worker in the
-- transaction that marks it ready (the tokens billed and OpenRouter's `cost` in credits, null when a
-- reply did not report one), and the model that made its vectors (a reprocess with another model is
-- visible). Columns of the document rather than a ledger: a document has one current set of chunks;
-- the cost of the attempts before is in the logs.
alter table public.documents
  add column embedding_model text check (embedding_model is null or char_length(embedding_model) between 1 and 200),
  add column embedding_tokens integer check (embedding_tokens is null or embedding_tokens >= 0),
  add column embedding_cost numeric(14, 8) check (embedding_cost is null or embedding_cost >= 0);

-- The sweep's probe for uploads whose file never arrived.
create index idx_documents_uploading on public.documents (created_at) where status = 'uploading';
