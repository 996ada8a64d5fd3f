-- The knowledge base (issue 24, API.md "Documents (knowledge)"): a workspace's documents and their
-- chunks, each chunk with its embedding (pgvector, cosine, HNSW) and its full-text vector (GIN), under
-- the same Row Level Security as every workspace row, so there is no second store to keep in step and a
-- tenant never reads another's chunks. The hybrid search is one statement in oneai/db/knowledge.py.
--
-- pgvector lives in schema `extensions`, as Supabase installs it (Supabase has the schema and grants
-- usage on it to the API roles; the embedded PostgreSQL of the tests and `make dev` gets both here).
-- Every reference below is schema-qualified (`extensions.vector`, `extensions.vector_cosine_ops`), so
-- nothing depends on a role's search_path. The embedded server ships pgvector 0.6.2, Supabase 0.8:
-- this file uses only what both have (vector(1536), HNSW with vector_cosine_ops).
--
-- A chatbot's link to its documents (chatbot_documents) comes with the chatbots issue.

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists vector with schema extensions;

-- ---------------------------------------------------------------------------------------------
-- Documents
-- ---------------------------------------------------------------------------------------------
create table public.documents (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  filename text not null check (char_length(filename) between 1 and 255),
  media_type text not null check (char_length(media_type) between 1 and 255),
  size_bytes bigint not null check (size_bytes >= 0),
  -- The S3 key of the uploaded file (under the workspace's prefix; the presigned policy pins it).
  storage_key text not null unique check (char_length(storage_key) between 1 and 1024),
  status text not null default 'uploading'
    check (status in ('uploading', 'queued', 'processing', 'ready', 'failed')),
  -- Progress while processing: chunks embedded and written out of the document's chunks (null until
  -- the document is chunked).
  chunks_done integer not null default 0 check (chunks_done >= 0),
  chunks_total integer check (chunks_total >= 0),
  -- What was wrong, in words a user understands: present exactly when the document failed.
  error text check (error is null or char_length(error) between 1 and 1000),
  pages integer check (pages >= 0),
  tokens integer check (tokens >= 0),
  tags text[] not null default '{}' check (cardinality(tags) <= 50),
  description text check (description is null or char_length(description) <= 2000),
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  -- SHA-256 of the file's bytes, once read: finds the same file uploaded twice.
  content_sha256 bytea check (content_sha256 is null or octet_length(content_sha256) = 32),
  -- Processing attempts so far (the sweep fails a document after the last retry).
  attempts integer not null default 0 check (attempts >= 0),
  -- The member who uploaded it; kept when they leave or are erased (the document is the workspace's).
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  processing_started_at timestamptz,
  constraint documents_progress check (chunks_total is null or chunks_done <= chunks_total),
  constraint documents_failed_has_error check ((status = 'failed') = (error is not null)),
  -- The target of the chunks' (document, workspace) reference: a chunk is in its document's workspace.
  constraint documents_id_workspace unique (id, workspace_id)
);

create index idx_documents_workspace on public.documents (workspace_id, created_at desc);
-- The sweep's probe for documents stuck in processing.
create index idx_documents_processing on public.documents (processing_started_at) where status = 'processing';
create trigger documents_set_updated_at before update on public.documents
  for each row execute function public.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Chunks
-- ---------------------------------------------------------------------------------------------
-- The full-text configuration is 'english': its stemmer makes "refunds" find "refund" and its stop
-- words keep "the" from matching every chunk, which is what the documents (mostly English business
-- documents) and the queries need; a word of another language still matches itself (the same
-- stemming runs on the query and the text). 'simple' would keep every word as written: no stemming, so
-- a plural would miss its singular, and stop words would flood the matches.
create table public.document_chunks (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  document_id uuid not null,
  chunk_index integer not null check (chunk_index >= 0),
  text text not null check (char_length(text) >= 1),
  page integer check (page >= 1),
  section text check (section is null or char_length(section) <= 1000),
  tokens integer not null check (tokens >= 0),
  embedding extensions.vector(1536) not null,
  tsv tsvector generated always as (to_tsvector('english'::regconfig, text)) stored,
  constraint document_chunks_document foreign key (document_id, workspace_id)
    references public.documents (id, workspace_id) on delete cascade,
  constraint document_chunks_index unique (document_id, chunk_index)
);

-- Vector neighbours by cosine distance. Defaults m = 16, ef_construction = 64 (bench/knowledge_search.py
-- measures recall@10 against the exact scan with them).
create index idx_document_chunks_embedding on public.document_chunks
  using hnsw (embedding extensions.vector_cosine_ops);
create index idx_document_chunks_tsv on public.document_chunks using gin (tsv);
-- A workspace's chunks (the exact scan of a small workspace, the filter of the search), a document's.
create index idx_document_chunks_workspace on public.document_chunks (workspace_id, document_id);

-- ---------------------------------------------------------------------------------------------
-- Row Level Security: members read, editors write, the ingest worker and the purge are the service's
-- ---------------------------------------------------------------------------------------------
alter table public.documents enable row level security;
alter table public.document_chunks enable row level security;
-- Supabase's default privileges give new tables to the API roles: take that back, grant what is needed.
revoke all on public.documents, public.document_chunks from anon, authenticated;

grant select, insert, update, delete on public.documents to authenticated;
create policy documents_members_read on public.documents for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy documents_editors_add on public.documents for insert to authenticated
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy documents_editors_change on public.documents for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy documents_editors_remove on public.documents for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant select, delete on public.document_chunks to authenticated;
grant insert (workspace_id, document_id, chunk_index, text, page, section, tokens, embedding),
  update (text, page, section, tokens, embedding) on public.document_chunks to authenticated;
create policy document_chunks_members_read on public.document_chunks for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy document_chunks_editors_add on public.document_chunks for insert to authenticated
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy document_chunks_editors_change on public.document_chunks for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy document_chunks_editors_remove on public.document_chunks for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant all on public.documents, public.document_chunks to service_role;
