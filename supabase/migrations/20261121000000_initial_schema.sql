-- OneAI initial schema: the whole data model of DESIGN.md, under Row Level Security.
-- Applies to Supabase as is (auth.users, auth.uid() and the API roles exist there) and to plain
-- PostgreSQL after the project's local auth shim.

-- ---------------------------------------------------------------------------------------------
-- Reference data: tiers and their quotas (the plan's numbers). Read by provisioning and billing.
-- ---------------------------------------------------------------------------------------------
create table public.tier_quota_limits (
  tier text not null check (tier in ('free', 'pro', 'enterprise')),
  quota_key text not null check (quota_key in ('small_messages', 'large_messages', 'image_generation')),
  quota_limit integer not null check (quota_limit > 0),
  reset_frequency text not null check (reset_frequency in ('3hour', 'daily', 'monthly')),
  primary key (tier, quota_key)
);

insert into public.tier_quota_limits (tier, quota_key, quota_limit, reset_frequency) values
  ('free', 'small_messages', 100, 'monthly'),
  ('free', 'large_messages', 20, 'monthly'),
  ('free', 'image_generation', 5, '3hour'),
  ('pro', 'small_messages', 500, 'monthly'),
  ('pro', 'large_messages', 100, 'monthly'),
  ('pro', 'image_generation', 10, '3hour'),
  ('enterprise', 'small_messages', 5000, 'monthly'),
  ('enterprise', 'large_messages', 1000, 'monthly'),
  ('enterprise', 'image_generation', 100, '3hour');

-- The one place reset times are computed: 3hour rolls from the last reset, daily is the next
-- 00:00 UTC, monthly the next 1st at 00:00 UTC.
create function public.next_quota_reset(frequency text, last_reset timestamptz)
returns timestamptz
language sql immutable strict
set search_path = ''
as $$
  select case frequency
    when '3hour' then last_reset + interval '3 hours'
    when 'daily' then (date_trunc('day', last_reset at time zone 'UTC') + interval '1 day') at time zone 'UTC'
    when 'monthly' then (date_trunc('month', last_reset at time zone 'UTC') + interval '1 month') at time zone 'UTC'
  end
$$;

create function public.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Users (one row per auth.users row) with their subscription tier.
-- ---------------------------------------------------------------------------------------------
create table public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text unique,
  name text,
  picture_url text,
  provider_type text,
  provider_id text,
  subscription_tier text not null default 'free' check (subscription_tier in ('free', 'pro', 'enterprise')),
  subscription_status text not null default 'active'
    check (subscription_status in ('active', 'pending', 'halted', 'cancelled', 'completed')),
  preferences jsonb not null default '{}'::jsonb,
  is_admin boolean not null default false,
  suspended_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint unique_provider unique (provider_type, provider_id)
);

create index idx_users_subscription on public.users (subscription_tier) where subscription_status = 'active';
create trigger users_set_updated_at before update on public.users
  for each row execute function public.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Subscriptions (Razorpay) and the history of tier changes.
-- ---------------------------------------------------------------------------------------------
create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  plan_id text not null,
  tier text not null check (tier in ('pro', 'enterprise')),
  status text not null check (status in (
    'created', 'authenticated', 'active', 'pending', 'halted', 'cancelled', 'completed', 'expired', 'paused'
  )),
  payment_provider text not null default 'razorpay',
  provider_subscription_id text not null,
  current_period_start timestamptz,
  current_period_end timestamptz,
  -- Only ever moves forward, whatever order webhooks arrive in.
  paid_until timestamptz,
  grace_until timestamptz,
  last_event_at timestamptz,
  cancel_at_period_end boolean not null default false,
  trial_start timestamptz,
  trial_end timestamptz,
  canceled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  metadata jsonb not null default '{}'::jsonb,
  constraint unique_provider_subscription unique (payment_provider, provider_subscription_id)
);

create index idx_subscriptions_user on public.subscriptions (user_id, created_at desc);
create index idx_subscriptions_user_active on public.subscriptions (user_id) where status = 'active';
create index idx_subscriptions_period_end on public.subscriptions (current_period_end) where status = 'active';
create index idx_subscriptions_grace on public.subscriptions (grace_until) where grace_until is not null;
create trigger subscriptions_set_updated_at before update on public.subscriptions
  for each row execute function public.set_updated_at();

create table public.subscription_history (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  old_tier text,
  new_tier text not null,
  change_reason text not null check (change_reason in (
    'new_subscription', 'upgrade', 'downgrade', 'system', 'payment_failure', 'cancellation', 'renewal'
  )),
  changed_at timestamptz not null default now(),
  metadata jsonb not null default '{}'::jsonb
);

create index idx_subscription_history_user on public.subscription_history (user_id, changed_at);

-- ---------------------------------------------------------------------------------------------
-- Conversations and messages with revisions.
-- ---------------------------------------------------------------------------------------------
create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  title text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_message_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  -- Target of the (conversation_id, user_id) foreign keys: a message or link has its conversation's user.
  constraint conversations_id_user unique (id, user_id)
);

-- Lists are "newest activity first": every new message and every edit bumps updated_at.
create index idx_conversations_user_activity on public.conversations (user_id, updated_at desc, id desc);
create trigger conversations_set_updated_at before update on public.conversations
  for each row execute function public.set_updated_at();

create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null,
  user_id uuid not null references public.users (id) on delete cascade,
  role text not null check (role in ('user', 'assistant', 'system')),
  content text not null,
  model_id text not null,
  tokens_used integer check (tokens_used >= 0),
  sequence_number integer not null check (sequence_number > 0),
  -- The previous message of the branch this message belongs to.
  parent_message_id uuid references public.chat_messages (id) on delete cascade,
  -- The first message ever written at this position (null for that first one).
  original_message_id uuid references public.chat_messages (id) on delete cascade,
  revision_number integer not null default 0 check (revision_number >= 0),
  revision_type text check (revision_type in ('user_edit', 'regeneration')),
  is_latest boolean not null default true,
  status text not null default 'complete' check (status in ('complete', 'incomplete', 'error')),
  -- When this message last became part of the current branch: picks the branch to restore.
  selected_at timestamptz not null default clock_timestamp(),
  metadata jsonb not null default '{}'::jsonb,
  search_vector tsvector generated always as (to_tsvector('simple'::regconfig, content)) stored,
  created_at timestamptz not null default now(),
  constraint unique_revision_sequence unique (original_message_id, revision_number),
  constraint revision_type_matches check ((revision_number = 0) = (revision_type is null)),
  constraint chat_messages_conversation foreign key (conversation_id, user_id)
    references public.conversations (id, user_id) on delete cascade
);

-- The plan's UNIQUE (conversation_id, sequence_number) holds only among the current branch (user_id is
-- fixed per conversation by the foreign key, so it does not weaken the rule). With user_id in the key,
-- the RLS filter is an index condition too, and loading a conversation's current state is one ordered
-- scan of this index, whatever the planner guesses about the caller's share of rows.
create unique index idx_chat_messages_latest_seq
  on public.chat_messages (conversation_id, user_id, sequence_number) where is_latest;
create unique index idx_chat_messages_position_revision
  on public.chat_messages (conversation_id, sequence_number, revision_number);
create index idx_chat_messages_parent on public.chat_messages (parent_message_id);
create index idx_chat_messages_search on public.chat_messages using gin (search_vector);
create index idx_chat_messages_user_created on public.chat_messages (user_id, created_at desc, id desc);

-- ---------------------------------------------------------------------------------------------
-- Quotas, usage records, processed webhook events, share links.
-- ---------------------------------------------------------------------------------------------
create table public.usage_quotas (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  subscription_tier text not null,
  quota_key text not null check (quota_key in ('small_messages', 'large_messages', 'image_generation')),
  used_count integer not null default 0,
  quota_limit integer not null,
  reset_frequency text not null check (reset_frequency in ('3hour', 'daily', 'monthly')),
  last_reset_at timestamptz not null,
  next_reset_at timestamptz not null,
  last_usage_at timestamptz,
  -- Highest warning threshold (80/90/100) already published in the current window.
  warning_level smallint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint unique_user_quota unique (user_id, quota_key),
  constraint positive_usage check (used_count >= 0 and quota_limit >= 0)
);

create index idx_usage_quotas_due on public.usage_quotas (reset_frequency, next_reset_at);
create trigger usage_quotas_set_updated_at before update on public.usage_quotas
  for each row execute function public.set_updated_at();

create table public.usage_records (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  -- Deleting a conversation unlinks its usage; the usage itself stays for quotas and billing.
  conversation_id uuid references public.conversations (id) on delete set null,
  message_id uuid references public.chat_messages (id) on delete set null,
  quota_key text not null,
  requested_model text not null,
  model_id text not null,
  generation_id text,
  prompt_tokens integer not null default 0,
  completion_tokens integer not null default 0,
  total_tokens integer generated always as (prompt_tokens + completion_tokens) stored,
  cost numeric(14, 8) not null default 0 check (cost >= 0),
  status text not null default 'complete' check (status in ('complete', 'incomplete', 'error')),
  created_at timestamptz not null default now()
);

create index idx_usage_records_user_created on public.usage_records (user_id, created_at);
create index idx_usage_records_conversation on public.usage_records (conversation_id);
create index idx_usage_records_message on public.usage_records (message_id);

create table public.processed_webhook_events (
  event_id text primary key,
  provider text not null default 'razorpay',
  event_type text not null,
  provider_subscription_id text,
  received_at timestamptz not null default now()
);

create table public.share_links (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null,
  user_id uuid not null references public.users (id) on delete cascade,
  token text not null unique,
  snapshot jsonb not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  constraint share_links_conversation foreign key (conversation_id, user_id)
    references public.conversations (id, user_id) on delete cascade
);

create unique index idx_share_links_active on public.share_links (conversation_id) where revoked_at is null;

-- ---------------------------------------------------------------------------------------------
-- Provisioning: every auth.users row gets a users row and the free tier's quotas.
-- ---------------------------------------------------------------------------------------------
create function public.assign_tier_quotas(p_user_id uuid, p_tier text, p_reset_usage boolean)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.tier_quota_limits where tier = p_tier) then
    raise exception 'unknown tier %', p_tier using errcode = '22023';
  end if;
  insert into public.usage_quotas as q
    (user_id, subscription_tier, quota_key, used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at)
  select p_user_id, t.tier, t.quota_key, 0, t.quota_limit, t.reset_frequency, now(),
         public.next_quota_reset(t.reset_frequency, now())
  from public.tier_quota_limits t
  where t.tier = p_tier
  on conflict (user_id, quota_key) do update set
    subscription_tier = excluded.subscription_tier,
    quota_limit = excluded.quota_limit,
    reset_frequency = excluded.reset_frequency,
    used_count = case when p_reset_usage then 0 else q.used_count end,
    warning_level = case when p_reset_usage then 0 else q.warning_level end,
    last_reset_at = case when p_reset_usage then excluded.last_reset_at else q.last_reset_at end,
    next_reset_at = case when p_reset_usage or q.reset_frequency <> excluded.reset_frequency
                         then excluded.next_reset_at else q.next_reset_at end;
end
$$;

create function public.handle_new_auth_user() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.users (id, email, name, picture_url, provider_type, provider_id)
  values (
    new.id,
    new.email,
    coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name'),
    coalesce(new.raw_user_meta_data ->> 'avatar_url', new.raw_user_meta_data ->> 'picture'),
    new.raw_app_meta_data ->> 'provider',
    coalesce(new.raw_user_meta_data ->> 'provider_id', new.raw_user_meta_data ->> 'sub')
  )
  on conflict (id) do nothing;
  perform public.assign_tier_quotas(new.id, 'free', false);
  return new;
end
$$;

create trigger on_auth_user_created after insert on auth.users
  for each row execute function public.handle_new_auth_user();

create function public.handle_auth_user_email_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.users set email = new.email where id = new.id;
  return new;
end
$$;

create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function public.handle_auth_user_email_change();

-- A public, read-only view of one share link, for anyone holding its token. A function rather than
-- a policy, so that nobody can list the tokens of others.
create function public.shared_conversation_snapshot(p_token text) returns jsonb
language sql stable
security definer
set search_path = ''
as $$
  select s.snapshot || jsonb_build_object('shared_at', s.created_at)
  from public.share_links s
  where s.token = p_token and s.revoked_at is null
$$;

-- Full-text search over the caller's own current messages. Under RLS the planner may not use the GIN
-- index for `@@` (the operator is not leakproof, so it must run after the policy filter); this function
-- runs as its owner and applies the same rule itself, `user_id = auth.uid()`, so the index is usable.
create function public.search_chat_history(
  p_query text,
  p_model text,
  p_from timestamptz,
  p_to timestamptz,
  p_after_created timestamptz,
  p_after_id uuid,
  p_limit integer
)
returns table (
  conversation_id uuid, message_id uuid, role text, model text, created_at timestamptz, snippet text
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  query tsquery;
begin
  if caller is null then
    return;
  end if;
  if p_query is null then
    return query
      select m.conversation_id, m.id, m.role, m.model_id, m.created_at, left(m.content, 200)
      from public.chat_messages m
      where m.user_id = caller and m.is_latest
        and (p_model is null or m.model_id = p_model)
        and (p_from is null or m.created_at >= p_from)
        and (p_to is null or m.created_at < p_to)
        and (p_after_created is null or (m.created_at, m.id) < (p_after_created, p_after_id))
      order by m.created_at desc, m.id desc
      limit p_limit;
    return;
  end if;
  query := websearch_to_tsquery('simple'::regconfig, p_query);
  return query
    select m.conversation_id, m.id, m.role, m.model_id, m.created_at,
           ts_headline('simple'::regconfig, m.content, query,
                       'StartSel="",StopSel="",MaxWords=30,MinWords=10,MaxFragments=1')
    from public.chat_messages m
    where m.search_vector @@ query and m.user_id = caller and m.is_latest
      and (p_model is null or m.model_id = p_model)
      and (p_from is null or m.created_at >= p_from)
      and (p_to is null or m.created_at < p_to)
      and (p_after_created is null or (m.created_at, m.id) < (p_after_created, p_after_id))
    order by m.created_at desc, m.id desc
    limit p_limit;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges and Row Level Security. Supabase grants the API roles everything by default;
-- take that back and grant exactly what each role may do.
-- ---------------------------------------------------------------------------------------------
revoke all on all tables in schema public from anon, authenticated;
revoke execute on all functions in schema public from public, anon, authenticated;

grant select on public.tier_quota_limits to anon, authenticated;
grant execute on function public.shared_conversation_snapshot(text) to anon, authenticated;
grant execute on function public.search_chat_history(text, text, timestamptz, timestamptz, timestamptz, uuid, integer)
  to authenticated;
grant execute on function public.next_quota_reset(text, timestamptz) to authenticated;

alter table public.users enable row level security;
alter table public.subscriptions enable row level security;
alter table public.subscription_history enable row level security;
alter table public.conversations enable row level security;
alter table public.chat_messages enable row level security;
alter table public.usage_quotas enable row level security;
alter table public.usage_records enable row level security;
alter table public.processed_webhook_events enable row level security;
alter table public.share_links enable row level security;

-- users: read your own row; change only your profile fields (tier, status, admin are not yours).
grant select on public.users to authenticated;
grant update (name, picture_url, preferences) on public.users to authenticated;
create policy users_select_own on public.users for select to authenticated
  using (id = (select auth.uid()));
create policy users_update_own on public.users for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));

-- Billing and quota state is written by the service only; users may read their own.
grant select on public.subscriptions, public.subscription_history, public.usage_quotas, public.usage_records
  to authenticated;
create policy subscriptions_select_own on public.subscriptions for select to authenticated
  using (user_id = (select auth.uid()));
create policy subscription_history_select_own on public.subscription_history for select to authenticated
  using (user_id = (select auth.uid()));
create policy usage_quotas_select_own on public.usage_quotas for select to authenticated
  using (user_id = (select auth.uid()));
create policy usage_records_select_own on public.usage_records for select to authenticated
  using (user_id = (select auth.uid()));

-- Conversations and their messages and share links belong to their user.
grant select, insert, update, delete on public.conversations, public.chat_messages, public.share_links
  to authenticated;
create policy conversations_own on public.conversations for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
-- Reading: the (conversation_id, user_id) foreign keys tie a message or link to a conversation of the
-- same user, so owning the row means owning its conversation. Writing: the conversation is checked in
-- the policy itself, before any unique index could answer for someone else's conversation.
create policy chat_messages_own on public.chat_messages for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and exists (
      select 1 from public.conversations c
      where c.id = conversation_id and c.user_id = (select auth.uid())
    )
  );
create policy share_links_own on public.share_links for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and exists (
      select 1 from public.conversations c
      where c.id = conversation_id and c.user_id = (select auth.uid())
    )
  );

-- processed_webhook_events: no policy at all; only the service role (bypassing RLS) touches it.
