-- A workspace's own provider keys (issue 26 items 1-3; API.md "Provider keys (bring your own)"): who pays for
-- a workspace's replies when it brings its own account at OpenRouter, OpenAI, Anthropic, Google or a custom
-- OpenAI-compatible endpoint.
--
-- The key itself is stored sealed (`sealed_key`: oneai.crypto.envelope's `Sealed.to_bytes()`, AES-256-GCM
-- under a KMS data key, bound to the workspace id); `last4` is what the mask shows (`…abcd`, empty for a key
-- too short to show any of it). The sealed bytes are never selected by a user-facing query: the
-- `authenticated` role may write them (create, replace) but has no SELECT on the column, so no query of a
-- user (not even an admin's `select *`) can read them; the service role reads them to open a key for a call
-- (a reply's routing, a key's test), through `oneai.db.provider_keys`.
--
-- RLS (API.md roles: "admin: members, keys"): admins and owners of the workspace read and write its keys;
-- editors, viewers and strangers see none (the routes answer a viewer's list with 403, another workspace's
-- key with 404).
--
-- Spend: a key's spend this month is computed from the usage records it served (`usage_records
-- .provider_key_id`, their USD `cost` at ONEAI_USD_INR_RATE), not kept as a counter: one source of truth,
-- and a deleted usage row or key changes nothing else.

create table public.provider_keys (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  provider text not null check (provider in ('openrouter', 'openai', 'anthropic', 'google', 'custom')),
  name text not null check (char_length(name) between 1 and 100),
  sealed_key bytea not null check (octet_length(sealed_key) between 32 and 4096),
  last4 text not null check (char_length(last4) <= 4),
  -- Only a `custom` key has one (required there); checked by the outbound guard at save time and again
  -- at every call.
  base_url text check (base_url is null or char_length(base_url) between 1 and 2048),
  -- INR a month (estimated spend of the replies it served); null: no limit.
  monthly_limit numeric(16, 2) check (monthly_limit is null or monthly_limit > 0),
  status text not null default 'active' check (status in ('active', 'invalid')),
  invalid_reason text check (invalid_reason is null or char_length(invalid_reason) <= 500),
  checked_at timestamptz,
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint provider_keys_base_url_custom_only check ((provider = 'custom') = (base_url is not null)),
  constraint provider_keys_invalid_reason check (status = 'invalid' or invalid_reason is null),
  constraint provider_keys_one_name unique (workspace_id, provider, name)
);

create index idx_provider_keys_workspace on public.provider_keys (workspace_id, created_at, id);

create trigger provider_keys_set_updated_at before update on public.provider_keys
  for each row execute function public.set_updated_at();

-- Which key served a usage record (null: the platform's OpenRouter account, paid from credits).
alter table public.usage_records add column provider_key_id uuid
  references public.provider_keys (id) on delete set null;
create index idx_usage_records_provider_key on public.usage_records (provider_key_id, created_at)
  where provider_key_id is not null;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security and column rights
-- ---------------------------------------------------------------------------------------------
alter table public.provider_keys enable row level security;
revoke all on public.provider_keys from anon, authenticated;

-- Every column but `sealed_key`.
grant select (id, workspace_id, provider, name, last4, base_url, monthly_limit, status, invalid_reason,
  checked_at, created_by, created_at, updated_at) on public.provider_keys to authenticated;
grant insert (workspace_id, provider, name, sealed_key, last4, base_url, monthly_limit, created_by)
  on public.provider_keys to authenticated;
grant update (name, sealed_key, last4, base_url, monthly_limit, status, invalid_reason, checked_at)
  on public.provider_keys to authenticated;
grant delete on public.provider_keys to authenticated;
grant all on public.provider_keys to service_role;

create policy provider_keys_admins_read on public.provider_keys for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy provider_keys_admins_create on public.provider_keys for insert to authenticated
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('admin')) and created_by = (select auth.uid())
  );
create policy provider_keys_admins_change on public.provider_keys for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy provider_keys_admins_delete on public.provider_keys for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
