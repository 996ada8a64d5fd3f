-- Chatbots (issue 25, API.md "Chatbots"): a workspace's configured assistant (a model, a system prompt,
-- parameters, retrieval settings and a set of the workspace's documents), and the links from the chat
-- product's rows to it: a member's conversation with a chatbot, the sources saved with its replies and
-- the usage its replies cost the workspace.
--
-- Same tenancy as documents: members read, editors write, by `oneai_private.workspaces_with_role` in the
-- policies themselves. A chatbot's documents are its workspace's by construction: the link table refers to
-- both sides with the workspace id in the key, so a document of another workspace cannot be linked
-- whatever the application sends.

-- ---------------------------------------------------------------------------------------------
-- Chatbots
-- ---------------------------------------------------------------------------------------------
create table public.chatbots (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  -- What the widget's script tag names (never the row id): random, unguessable, stable for the chatbot.
  public_id text not null unique default ('cb_' || replace(gen_random_uuid()::text, '-', ''))
    check (public_id ~ '^cb_[0-9a-f]{32}$'),
  name text not null check (char_length(name) between 1 and 100 and name = btrim(name)),
  description text check (description is null or char_length(description) <= 1000),
  use_case text not null default 'other'
    check (use_case in ('support', 'sales', 'faq', 'onboarding', 'internal', 'other')),
  -- An OpenRouter model id the product offers (checked against the catalogue and the plan by the service).
  model text not null check (char_length(model) between 1 and 200),
  temperature numeric(3, 2) not null default 0.3 check (temperature between 0 and 2),
  max_tokens integer not null default 1024 check (max_tokens between 1 and 32000),
  system_prompt text not null default '' check (char_length(system_prompt) <= 20000),
  retrieval_top_k integer not null default 5 check (retrieval_top_k between 1 and 20),
  -- Cosine similarity a passage must reach to be used (oneai/db/knowledge.py: the search's `score`).
  retrieval_min_score real not null default 0.3 check (retrieval_min_score between 0 and 1),
  -- What the chatbot does when no passage reaches min_score (API.md "shared rules": `fallback`).
  fallback_mode text not null default 'answer' check (fallback_mode in ('answer', 'message')),
  fallback_message text check (fallback_message is null or char_length(fallback_message) between 1 and 2000),
  -- The widget's settings (title, greeting, color, position, avatar_url, suggested_questions,
  -- allowed_origins), validated by the service's model.
  widget jsonb not null default '{}'::jsonb check (jsonb_typeof(widget) = 'object'),
  status text not null default 'draft' check (status in ('draft', 'active', 'disabled')),
  -- The member who created it; kept when they leave or are erased (the chatbot is the workspace's).
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- `POST /chatbots/{id}/reset-stats`: the stats count from here.
  stats_reset_at timestamptz,
  -- Soft delete (`DELETE /chatbots/{id}`): gone from every read at once, purged by the sweep, which also
  -- deletes its conversations and its documents unless the caller asked to keep them.
  deleted_at timestamptz,
  purge_conversations boolean not null default false,
  purge_documents boolean not null default false,
  constraint chatbots_fallback_message check (fallback_mode = 'answer' or fallback_message is not null),
  -- The target of the (chatbot, workspace) references below.
  constraint chatbots_id_workspace unique (id, workspace_id)
);

create index idx_chatbots_workspace on public.chatbots (workspace_id, created_at desc) where deleted_at is null;
create index idx_chatbots_deleted on public.chatbots (deleted_at) where deleted_at is not null;
create trigger chatbots_set_updated_at before update on public.chatbots
  for each row execute function public.set_updated_at();

create table public.chatbot_documents (
  chatbot_id uuid not null,
  document_id uuid not null,
  workspace_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (chatbot_id, document_id),
  constraint chatbot_documents_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete cascade,
  constraint chatbot_documents_document foreign key (document_id, workspace_id)
    references public.documents (id, workspace_id) on delete cascade
);

create index idx_chatbot_documents_document on public.chatbot_documents (document_id);

-- ---------------------------------------------------------------------------------------------
-- A member's conversation with a chatbot; the sources of a reply; the usage the workspace pays
-- ---------------------------------------------------------------------------------------------
-- The conversation stays its user's (their policy); `workspace_id` says whose traffic it is (a workspace
-- purged takes its chatbots' conversations with it), `chatbot_id` which chatbot answers in it. A chatbot
-- purged with `keep_conversations` leaves its conversations with the workspace and no chatbot.
alter table public.conversations
  add column workspace_id uuid references public.workspaces (id) on delete cascade,
  add column chatbot_id uuid,
  add constraint conversations_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete set null (chatbot_id),
  add constraint conversations_chatbot_in_workspace check (chatbot_id is null or workspace_id is not null);

create index idx_conversations_chatbot on public.conversations (chatbot_id, created_at desc)
  where chatbot_id is not null;
create index idx_conversations_workspace on public.conversations (workspace_id) where workspace_id is not null;

-- A user may file a conversation under a workspace only while a member of it (the chatbot's own
-- workspace, by the foreign key above). Restrictive: it narrows the user's own-rows policy.
create policy conversations_workspace_member on public.conversations as restrictive
  for insert to authenticated
  with check (workspace_id is null or workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy conversations_workspace_member_update on public.conversations as restrictive
  for update to authenticated
  using (true)
  with check (workspace_id is null or workspace_id in (select oneai_private.workspaces_with_role('viewer')));

-- The passages a chatbot's reply used (API.md "shared rules": `sources`), in the order they were given:
-- [{"chunk_id","document_id","filename","page","chunk_index","score"}]. Null on other messages.
alter table public.chat_messages
  add column sources jsonb check (sources is null or jsonb_typeof(sources) = 'array');

-- A chatbot's reply is the workspace's cost: its usage names the workspace and the chatbot. Usage outlives
-- both (billing and analytics read it), so the references are cleared, not cascaded.
alter table public.usage_records
  add column workspace_id uuid references public.workspaces (id) on delete set null,
  add column chatbot_id uuid references public.chatbots (id) on delete set null;

create index idx_usage_records_workspace on public.usage_records (workspace_id, created_at)
  where workspace_id is not null;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security: members read, editors write; the sweep's purge is the service's
-- ---------------------------------------------------------------------------------------------
alter table public.chatbots enable row level security;
alter table public.chatbot_documents enable row level security;
revoke all on public.chatbots, public.chatbot_documents from anon, authenticated;

-- The ids, the public id and the times are the database's: a client cannot choose (and so guess or
-- collide) a public id.
grant select, delete on public.chatbots to authenticated;
grant insert (workspace_id, name, description, use_case, model, temperature, max_tokens, system_prompt,
              retrieval_top_k, retrieval_min_score, fallback_mode, fallback_message, widget, status, created_by),
  update (name, description, use_case, model, temperature, max_tokens, system_prompt, retrieval_top_k,
          retrieval_min_score, fallback_mode, fallback_message, widget, status, stats_reset_at, deleted_at,
          purge_conversations, purge_documents)
  on public.chatbots to authenticated;
create policy chatbots_members_read on public.chatbots for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy chatbots_editors_add on public.chatbots for insert to authenticated
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy chatbots_editors_change on public.chatbots for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy chatbots_editors_remove on public.chatbots for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant select, insert, delete on public.chatbot_documents to authenticated;
create policy chatbot_documents_members_read on public.chatbot_documents for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy chatbot_documents_editors_add on public.chatbot_documents for insert to authenticated
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy chatbot_documents_editors_remove on public.chatbot_documents for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant all on public.chatbots, public.chatbot_documents to service_role;
