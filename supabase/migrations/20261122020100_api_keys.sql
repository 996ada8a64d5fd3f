-- API keys (API.md "API keys and the OpenAI-compatible API") and the usage they make.
--
-- A key is `oneai_sk_<prefix><secret>`; only its SHA-256 is stored (the key has 320 random bits, so
-- a fast hash is enough: nothing can be guessed from it). `prefix` finds the row; the server compares
-- the hashes in constant time. Users manage their own keys under RLS; a request made with a key finds
-- its user through `oneai_private.api_key_by_prefix` (security definer, called as the service role: the
-- caller is not known yet) and then runs as that user, under RLS, like a request with a JWT.

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 100),
  prefix text not null unique check (prefix ~ '^oneai_sk_[A-Za-z0-9_-]{12}$'),
  secret_hash bytea not null check (octet_length(secret_hash) = 32),
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz
);

create index idx_api_keys_user_created on public.api_keys (user_id, created_at);

alter table public.api_keys enable row level security;
-- Supabase grants the API roles everything on new tables by default: take it back, then grant only the
-- columns users see and set (the hash is never read back by users).
revoke all on public.api_keys from anon, authenticated;
grant select (id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at) on public.api_keys
  to authenticated;
grant insert (user_id, name, prefix, secret_hash, expires_at) on public.api_keys to authenticated;
grant update (revoked_at) on public.api_keys to authenticated;
create policy api_keys_own on public.api_keys for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

-- The key row of a prefix, for the server to check the hash, expiry and revocation. There is no caller
-- yet, so the server calls it as the service role (never anon: this schema is not theirs), and it
-- answers only what the check needs.
create function oneai_private.api_key_by_prefix(p_prefix text)
returns table (id uuid, user_id uuid, secret_hash bytea, expires_at timestamptz, revoked_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  select k.id, k.user_id, k.secret_hash, k.expires_at, k.revoked_at
  from public.api_keys k
  where k.prefix = p_prefix
$$;

revoke execute on function oneai_private.api_key_by_prefix(text) from public, anon, authenticated;
grant execute on function oneai_private.api_key_by_prefix(text) to service_role;

-- Note a key's use, at most once a minute, so that requests do not each write the key's row.
create function oneai_private.touch_api_key(p_key_id uuid)
returns void
language sql
volatile
security definer
set search_path = ''
as $$
  update public.api_keys k set last_used_at = now()
  where k.id = p_key_id and k.user_id = (select auth.uid())
    and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute')
$$;

revoke execute on function oneai_private.touch_api_key(uuid) from public, anon;
grant execute on function oneai_private.touch_api_key(uuid) to authenticated;

-- Usage made with a key names it (`/user/usage?group_by=api_key`); revoking keeps the link.
alter table public.usage_records add column api_key_id uuid references public.api_keys (id) on delete set null;
create index idx_usage_records_user_key on public.usage_records (user_id, api_key_id, created_at);

-- Usage of an OpenAI-compatible completion: no conversation or message (that API is stateless), the
-- caller's own key instead. Like record_usage, users cannot write usage records themselves.
create function oneai_private.record_api_usage(
  p_api_key_id uuid,
  p_quota_key text,
  p_requested_model text,
  p_model_id text,
  p_generation_id text,
  p_prompt_tokens integer,
  p_completion_tokens integer,
  p_cost numeric,
  p_status text
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  recorded uuid;
begin
  if caller is null then
    raise exception 'no caller' using errcode = '42501';
  end if;
  if not exists (select 1 from public.api_keys k where k.id = p_api_key_id and k.user_id = caller) then
    raise exception 'api key not found' using errcode = 'P0002';
  end if;
  insert into public.usage_records (
    user_id, api_key_id, quota_key, requested_model, model_id, generation_id,
    prompt_tokens, completion_tokens, cost, status)
  values (
    caller, p_api_key_id, p_quota_key, p_requested_model, p_model_id, p_generation_id,
    greatest(coalesce(p_prompt_tokens, 0), 0), greatest(coalesce(p_completion_tokens, 0), 0),
    greatest(coalesce(p_cost, 0), 0), p_status)
  returning id into recorded;
  return recorded;
end
$$;

revoke execute on function oneai_private.record_api_usage(uuid, text, text, text, text, integer, integer, numeric, text)
  from public, anon;
grant execute on function oneai_private.record_api_usage(uuid, text, text, text, text, integer, integer, numeric, text)
  to authenticated, service_role;
