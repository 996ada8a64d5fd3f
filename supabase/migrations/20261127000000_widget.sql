-- The embeddable widget (issue 27, API.md "The embeddable widget"): a chatbot's visitors, their
-- conversations and messages, and the public routes' database side.
--
-- Storage decision (docs/architecture.md, "The embeddable widget"): a visitor's conversation lives in
-- tables of its own, owned by the workspace, not in public.conversations/chat_messages. Those are a
-- user's rows through and through: `user_id not null`, the (conversation_id, user_id) foreign keys that
-- tie a message, a share link or a reply stream to a conversation of the same user, the unique index of
-- the current branch keyed with user_id, and the one-round-trip chat turn that writes them as
-- `auth.uid()`. A nullable user_id would quietly switch those composite keys off for visitor rows (MATCH
-- SIMPLE skips a key with a null) and weaken the rules that keep a member's conversations theirs. A
-- visitor conversation also has none of the user's features (revisions, branches, sharing, titles) and
-- some of its own (visitor info, status, tags, notes, a rating), read by the workspace's editors in the
-- inbox (issue 28) under the workspace's membership policies.
--
-- The public routes run as `anon` and reach these tables only through the `security definer` functions
-- below (schema oneai_anon, which holds what anonymous callers may call and nothing else), after the
-- application checked the visitor's session token; each function acts only on the named visitor's rows of
-- the named chatbot.

-- ---------------------------------------------------------------------------------------------
-- Visitors: one row per chatbot and visitor id (the random id the widget keeps in the visitor's browser)
-- ---------------------------------------------------------------------------------------------
create table public.widget_visitors (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  chatbot_id uuid not null,
  -- Chosen by the widget (crypto.randomUUID), so it is a bearer secret of the visitor's browser: long
  -- enough not to be guessed.
  visitor_id text not null check (visitor_id ~ '^[A-Za-z0-9_-]{16,64}$'),
  -- What the last session said (API.md: page URL, referrer, user agent, locale), and the source address
  -- as the rate limiter's keyed hash (never the address).
  page_url text check (page_url is null or char_length(page_url) <= 2048),
  referrer text check (referrer is null or char_length(referrer) <= 2048),
  user_agent text check (user_agent is null or char_length(user_agent) <= 512),
  locale text check (locale is null or char_length(locale) <= 35),
  source_hash bytea check (source_hash is null or octet_length(source_hash) = 32),
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  constraint widget_visitors_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete cascade,
  constraint widget_visitors_chatbot_visitor unique (chatbot_id, visitor_id)
);

create index idx_widget_visitors_workspace on public.widget_visitors (workspace_id);

-- ---------------------------------------------------------------------------------------------
-- A visitor's conversation with a chatbot (the inbox's rows, issue 28)
-- ---------------------------------------------------------------------------------------------
create table public.visitor_conversations (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  -- Null once the chatbot is purged with keep_conversations (the conversation stays the workspace's).
  chatbot_id uuid,
  visitor_ref uuid references public.widget_visitors (id) on delete set null,
  -- The visitor as they were when the conversation started (kept when the visitor row goes).
  visitor_id text not null check (visitor_id ~ '^[A-Za-z0-9_-]{16,64}$'),
  page_url text check (page_url is null or char_length(page_url) <= 2048),
  referrer text check (referrer is null or char_length(referrer) <= 2048),
  user_agent text check (user_agent is null or char_length(user_agent) <= 512),
  locale text check (locale is null or char_length(locale) <= 35),
  source_hash bytea check (source_hash is null or octet_length(source_hash) = 32),
  -- The inbox's triage (issue 28).
  status text not null default 'open' check (status in ('open', 'resolved', 'archived')),
  tags text[] not null default '{}' check (cardinality(tags) <= 20),
  notes text check (notes is null or char_length(notes) <= 10000),
  -- The visitor's 1-5 rating at the end of the conversation (the last one given counts).
  rating smallint check (rating between 1 and 5),
  rating_comment text check (rating_comment is null or char_length(rating_comment) <= 2000),
  rated_at timestamptz,
  message_count integer not null default 0 check (message_count >= 0),
  started_at timestamptz not null default now(),
  last_message_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint visitor_conversations_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete set null (chatbot_id),
  constraint visitor_conversations_rating check ((rating is null) = (rated_at is null)),
  -- The target of the messages' (conversation_id, workspace_id) key.
  constraint visitor_conversations_id_workspace unique (id, workspace_id)
);

create index idx_visitor_conversations_chatbot on public.visitor_conversations (chatbot_id, started_at desc)
  where chatbot_id is not null;
create index idx_visitor_conversations_workspace on public.visitor_conversations (workspace_id, started_at desc);
create index idx_visitor_conversations_visitor on public.visitor_conversations (visitor_ref, started_at desc);
create trigger visitor_conversations_set_updated_at before update on public.visitor_conversations
  for each row execute function public.set_updated_at();

-- A visitor conversation's messages: the visitor's and the chatbot's replies, in order. No revisions (the
-- widget neither edits nor regenerates). `search_vector` is the same as chat_messages' (the product's
-- full-text index: 'simple' configuration, GIN), so the inbox searches message text as /conversations does.
create table public.visitor_messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null,
  workspace_id uuid not null,
  role text not null check (role in ('user', 'assistant')),
  content text not null,
  sequence_number integer not null check (sequence_number > 0),
  status text not null default 'complete' check (status in ('complete', 'incomplete', 'error')),
  -- The reply's model and tokens (null on the visitor's messages).
  model_id text,
  tokens_used integer check (tokens_used >= 0),
  -- As chat_messages.sources: [{"chunk_id","document_id","filename","page","chunk_index","score"}].
  sources jsonb check (sources is null or jsonb_typeof(sources) = 'array'),
  search_vector tsvector generated always as (to_tsvector('simple'::regconfig, content)) stored,
  created_at timestamptz not null default now(),
  constraint visitor_messages_conversation foreign key (conversation_id, workspace_id)
    references public.visitor_conversations (id, workspace_id) on delete cascade,
  constraint visitor_messages_sequence unique (conversation_id, sequence_number)
);

create index idx_visitor_messages_search on public.visitor_messages using gin (search_vector);
create index idx_visitor_messages_workspace on public.visitor_messages (workspace_id, created_at desc);

-- ---------------------------------------------------------------------------------------------
-- Row Level Security: the workspace's editors read and triage (the inbox); visitors only through the
-- functions below; the service (part 2's chat turn may write as the service) everything.
-- ---------------------------------------------------------------------------------------------
alter table public.widget_visitors enable row level security;
alter table public.visitor_conversations enable row level security;
alter table public.visitor_messages enable row level security;
revoke all on public.widget_visitors, public.visitor_conversations, public.visitor_messages from anon, authenticated;

grant select on public.widget_visitors to authenticated;
create policy widget_visitors_editors_read on public.widget_visitors for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant select, delete on public.visitor_conversations to authenticated;
grant update (status, tags, notes) on public.visitor_conversations to authenticated;
create policy visitor_conversations_editors_read on public.visitor_conversations for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy visitor_conversations_editors_change on public.visitor_conversations for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('editor')));
create policy visitor_conversations_editors_remove on public.visitor_conversations for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant select on public.visitor_messages to authenticated;
create policy visitor_messages_editors_read on public.visitor_messages for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));

grant all on public.widget_visitors, public.visitor_conversations, public.visitor_messages to service_role;

-- ---------------------------------------------------------------------------------------------
-- Rate limits: the widget's buckets in the anonymous (per source) table of 20261122170000
-- ---------------------------------------------------------------------------------------------
-- `widget`: every public route, per source address; `widget_visitor`: per chatbot and visitor id (the
-- application sends the sha256 of both, and the table keys that once more with its secret key).
alter table oneai_private.source_rate_limits drop constraint source_rate_limits_bucket_check;
alter table oneai_private.source_rate_limits add constraint source_rate_limits_bucket_check
  check (bucket in ('feedback', 'widget', 'widget_visitor'));

-- ---------------------------------------------------------------------------------------------
-- What the public routes may call (as `anon`)
-- ---------------------------------------------------------------------------------------------
-- The chatbot a public id names, as the widget may see it: null when there is no such chatbot for the
-- public (unknown, a draft, deleted, or its workspace deleted); otherwise its ids, whether it answers now
-- (`available`: active, and its workspace not suspended) and its widget settings (allowed_origins
-- included: the application enforces them on every public route).
create function oneai_anon.widget_chatbot(p_public_id text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'chatbot_id', c.id,
    'workspace_id', c.workspace_id,
    'name', c.name,
    'available', c.status = 'active' and w.suspended_at is null,
    'widget', c.widget
  )
  from public.chatbots c
  join public.workspaces w on w.id = c.workspace_id
  where c.public_id = p_public_id
    and c.deleted_at is null
    and w.deleted_at is null
    and c.status in ('active', 'disabled')
$$;

-- A visitor session opens: the visitor's row of the chatbot is made or refreshed with what the page
-- said, and the conversation the widget asks to resume is named back only when it is this visitor's
-- conversation of this chatbot. The source comes as the sha256 digest the rate limiter gets, keyed here
-- with the rate limiter's key (oneai_private.source_hash_key), so the same keyed hash identifies a source
-- in both places and no address is stored.
create function oneai_anon.widget_open_session(p_chatbot_id uuid, p_visitor jsonb, p_conversation_id uuid)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_workspace uuid;
  v_source bytea;
  v_visitor uuid;
  v_conversation uuid;
begin
  select c.workspace_id into v_workspace from public.chatbots c where c.id = p_chatbot_id;
  if v_workspace is null then
    return null;
  end if;
  if p_visitor->>'source_digest' ~ '^[0-9a-f]{64}$' then
    select sha256(k.key || decode(p_visitor->>'source_digest', 'hex')) into v_source
      from oneai_private.source_hash_key k;
  end if;
  insert into public.widget_visitors as v
      (workspace_id, chatbot_id, visitor_id, page_url, referrer, user_agent, locale, source_hash)
    values (v_workspace, p_chatbot_id, p_visitor->>'visitor_id', p_visitor->>'page_url', p_visitor->>'referrer',
            p_visitor->>'user_agent', p_visitor->>'locale', v_source)
    on conflict (chatbot_id, visitor_id) do update
      set page_url = excluded.page_url, referrer = excluded.referrer, user_agent = excluded.user_agent,
          locale = excluded.locale, source_hash = excluded.source_hash, last_seen_at = now()
    returning v.id into v_visitor;
  if p_conversation_id is not null then
    select vc.id into v_conversation from public.visitor_conversations vc
      where vc.id = p_conversation_id and vc.chatbot_id = p_chatbot_id and vc.visitor_ref = v_visitor;
  end if;
  return jsonb_build_object('visitor_ref', v_visitor, 'conversation_id', v_conversation);
end
$$;

-- The messages of a visitor's own conversation of the chatbot, in order (null: not theirs, or none).
create function oneai_anon.widget_conversation_messages(p_chatbot_id uuid, p_visitor_id text, p_conversation_id uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'conversation_id', vc.id,
    'rating', vc.rating,
    'messages', coalesce((
      select jsonb_agg(jsonb_build_object(
          'id', m.id, 'role', m.role, 'content', m.content, 'status', m.status,
          'sources', coalesce(m.sources, '[]'::jsonb), 'created_at', m.created_at
        ) order by m.sequence_number)
      from public.visitor_messages m where m.conversation_id = vc.id
    ), '[]'::jsonb)
  )
  from public.visitor_conversations vc
  join public.widget_visitors v on v.id = vc.visitor_ref
  where vc.id = p_conversation_id and vc.chatbot_id = p_chatbot_id
    and v.chatbot_id = p_chatbot_id and v.visitor_id = p_visitor_id
$$;

-- The visitor rates their own conversation of the chatbot (again: the last rating counts). False: not
-- theirs.
create function oneai_anon.widget_rate_conversation(
  p_chatbot_id uuid, p_visitor_id text, p_conversation_id uuid, p_score integer, p_comment text
)
returns jsonb
language sql
volatile
security definer
set search_path = ''
as $$
  update public.visitor_conversations vc
    set rating = p_score, rating_comment = p_comment, rated_at = now()
    from public.widget_visitors v
    where vc.id = p_conversation_id and vc.chatbot_id = p_chatbot_id
      and v.id = vc.visitor_ref and v.chatbot_id = p_chatbot_id and v.visitor_id = p_visitor_id
    returning jsonb_build_object('conversation_id', vc.id, 'score', vc.rating, 'comment', vc.rating_comment,
                                 'rated_at', vc.rated_at)
$$;

revoke execute on function oneai_anon.widget_chatbot(text) from public;
revoke execute on function oneai_anon.widget_open_session(uuid, jsonb, uuid) from public;
revoke execute on function oneai_anon.widget_conversation_messages(uuid, text, uuid) from public;
revoke execute on function oneai_anon.widget_rate_conversation(uuid, text, uuid, integer, text) from public;
grant execute on function oneai_anon.widget_chatbot(text) to anon;
grant execute on function oneai_anon.widget_open_session(uuid, jsonb, uuid) to anon;
grant execute on function oneai_anon.widget_conversation_messages(uuid, text, uuid) to anon;
grant execute on function oneai_anon.widget_rate_conversation(uuid, text, uuid, integer, text) to anon;
