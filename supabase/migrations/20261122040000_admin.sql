-- Admin: the audit log, suspensions, per-user quota overrides, and what the business analytics read
-- (usage rolled up per day, the tier a usage was made on, the charges Razorpay reported).

-- ---------------------------------------------------------------------------------------------
-- The audit log: one row per admin write (and per change the system makes to an admin's decision),
-- written in the transaction of the change itself. Append-only for every role the API uses: the
-- triggers refuse UPDATE, DELETE and TRUNCATE whoever asks (service_role included; only the table's
-- owner could drop the triggers, and the functions never connect as it), and the grants give the
-- service role SELECT and INSERT only. No foreign keys: the log outlives the users it names, and it
-- holds ids and the changed fields only (no e-mail, no message text), so an erasure leaves nothing
-- personal in it.
-- ---------------------------------------------------------------------------------------------
create table public.audit_log (
  id uuid primary key default gen_random_uuid(),
  -- The admin who acted (their auth user id); null when the system did (e.g. a tier change ended an
  -- override).
  actor_id uuid,
  action text not null check (action ~ '^[a-z_]+\.[a-z_]+$'),
  target_type text not null check (target_type in ('user', 'subscription')),
  target_id text not null check (length(target_id) between 1 and 200),
  before jsonb,
  after jsonb,
  reason text check (length(reason) <= 1000),
  -- clock_timestamp: entries of one transaction keep their order.
  at timestamptz not null default clock_timestamp()
);

create index idx_audit_log_at on public.audit_log (at desc, id desc);
create index idx_audit_log_target on public.audit_log (target_type, target_id, at desc, id desc);

create function public.refuse_audit_log_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'audit_log is append-only: % is not allowed', tg_op using errcode = '42501';
end
$$;

create trigger audit_log_no_update_or_delete before update or delete on public.audit_log
  for each row execute function public.refuse_audit_log_change();
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function public.refuse_audit_log_change();

alter table public.audit_log enable row level security;
revoke all on public.audit_log from public, anon, authenticated, service_role;
grant select, insert on public.audit_log to service_role;

-- ---------------------------------------------------------------------------------------------
-- Suspensions: users.suspended_at (initial schema) is what every user transaction checks; the reason
-- is kept beside it for the admin's view (the audit log keeps every change of it).
-- ---------------------------------------------------------------------------------------------
alter table public.users add column suspension_reason text check (length(suspension_reason) <= 1000);

-- The admin's user list pages newest first; analytics count new users by created_at.
create index idx_users_created on public.users (created_at desc, id desc);

-- ---------------------------------------------------------------------------------------------
-- Quota overrides: one per user and quota key, replacing the tier's limit until `expires_at` (null:
-- until removed). usage_quotas.quota_limit stays the tier's limit; every reader and the reserve take
-- the limit in force through oneai_private.quota_override_in_force, so an override works (and ends on
-- expiry) at once, without any sweep. Rule on tier changes: a change of tier ends the user's overrides
-- (trigger below), because an override is granted against the tier the user had; a paid upgrade must
-- never leave a customer under the limits they now pay for, and a downgrade must not keep a grant meant
-- for a paid tier. Each ending is in the audit log (actor null: the system).
-- ---------------------------------------------------------------------------------------------
create table public.quota_overrides (
  user_id uuid not null references public.users (id) on delete cascade,
  quota_key text not null check (quota_key in ('small_messages', 'large_messages', 'image_generation')),
  quota_limit integer not null check (quota_limit >= 0),
  reason text not null check (length(reason) between 1 and 1000),
  expires_at timestamptz,
  created_by uuid,
  created_at timestamptz not null default now(),
  primary key (user_id, quota_key)
);

alter table public.quota_overrides enable row level security;
revoke all on public.quota_overrides from public, anon, authenticated;
-- A user's own quota reads (security invoker) see their own overrides; writes are the service's.
grant select on public.quota_overrides to authenticated;
create policy quota_overrides_select_own on public.quota_overrides for select to authenticated
  using (user_id = (select auth.uid()));

-- The one place the rule lives: the limit of the user's override of a quota in force at `p_at`, null
-- when there is none (the tier's limit applies). PL/pgSQL so that its one primary-key probe is planned
-- once per session. Security invoker: as a user, RLS shows only their own overrides.
create function oneai_private.quota_override_in_force(p_user_id uuid, p_quota_key text, p_at timestamptz)
returns integer
language plpgsql
stable
set search_path = ''
as $$
declare
  v_limit integer;
begin
  select o.quota_limit into v_limit
  from public.quota_overrides o
  where o.user_id = p_user_id and o.quota_key = p_quota_key and (o.expires_at is null or o.expires_at > p_at);
  return v_limit;
end
$$;

-- reserve_quota as before (20261121010000_quota_functions.sql explains it), the limit now the effective one.
create or replace function oneai_private.reserve_quota(p_quota_key text, p_units integer)
returns table (
  quota_key text,
  used_count integer,
  quota_limit integer,
  reset_frequency text,
  last_reset_at timestamptz,
  next_reset_at timestamptz,
  subscription_tier text,
  admitted boolean
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_caller uuid := auth.uid();
  v_now timestamptz := now();
  v_override integer;
begin
  if v_caller is null then
    raise exception 'reserve_quota needs an authenticated caller' using errcode = '42501';
  end if;
  if p_quota_key is null or p_units is null or p_units < 1 then
    raise exception 'reserve_quota: a quota key and units >= 1 are required (got %, %)', p_quota_key, p_units
      using errcode = '22023';
  end if;
  -- The override in force, read once before the UPDATE (a subquery in it would read the same statement
  -- snapshot, so nothing is lost): the limit is coalesce(override, the tier's limit).
  v_override := oneai_private.quota_override_in_force(v_caller, p_quota_key, v_now);

  return query
    with reserved as (
      update public.usage_quotas as q set
        used_count = (case when q.next_reset_at <= v_now then 0 else q.used_count end) + p_units,
        last_reset_at = case when q.next_reset_at <= v_now then v_now else q.last_reset_at end,
        next_reset_at = case when q.next_reset_at <= v_now
                             then public.next_quota_reset(q.reset_frequency, v_now)
                             else q.next_reset_at end,
        warning_level = case when q.next_reset_at <= v_now then 0 else q.warning_level end,
        last_usage_at = v_now
      where q.user_id = v_caller
        and q.quota_key = p_quota_key
        and (case when q.next_reset_at <= v_now then 0 else q.used_count end)::bigint + p_units
            <= coalesce(v_override, q.quota_limit)
      returning q.quota_key, q.used_count, coalesce(v_override, q.quota_limit) as quota_limit,
                q.reset_frequency, q.last_reset_at, q.next_reset_at, q.subscription_tier
    )
    select r.quota_key, r.used_count, r.quota_limit, r.reset_frequency, r.last_reset_at, r.next_reset_at,
           r.subscription_tier, true
    from reserved r;
  if found then
    return;
  end if;

  return query
    select q.quota_key,
           case when q.next_reset_at <= v_now then 0 else q.used_count end,
           coalesce(v_override, q.quota_limit),
           q.reset_frequency,
           case when q.next_reset_at <= v_now then v_now else q.last_reset_at end,
           case when q.next_reset_at <= v_now
                then public.next_quota_reset(q.reset_frequency, v_now)
                else q.next_reset_at end,
           q.subscription_tier,
           false
    from public.usage_quotas q
    where q.user_id = v_caller and q.quota_key = p_quota_key;
  if found then
    return;
  end if;

  return query
    select p_quota_key, 0, 0, null::text, null::timestamptz, null::timestamptz, u.subscription_tier, false
    from public.users u
    where u.id = v_caller;
end
$$;

-- One user's quotas as they stand now (a due reset applied in the result, the limit in force), for the
-- user's own reads (current_quotas) and the admin's view of a user (as the service role). `tier_limit`
-- is the tier's limit, `overridden` whether an override is in force.
create function oneai_private.quotas_of(p_user_id uuid)
returns table (
  quota_key text,
  used_count integer,
  quota_limit integer,
  tier_limit integer,
  overridden boolean,
  reset_frequency text,
  last_reset_at timestamptz,
  next_reset_at timestamptz,
  subscription_tier text
)
language sql
stable
security invoker
set search_path = ''
as $$
  select q.quota_key,
         case when q.next_reset_at <= now() then 0 else q.used_count end,
         coalesce(o.quota_limit, q.quota_limit),
         q.quota_limit,
         o.quota_limit is not null,
         q.reset_frequency,
         case when q.next_reset_at <= now() then now() else q.last_reset_at end,
         case when q.next_reset_at <= now()
              then public.next_quota_reset(q.reset_frequency, now())
              else q.next_reset_at end,
         q.subscription_tier
  from public.usage_quotas q
  cross join lateral (
    select oneai_private.quota_override_in_force(q.user_id, q.quota_key, now()) as quota_limit
  ) o
  where q.user_id = p_user_id
  order by q.quota_key
$$;

create or replace function oneai_private.current_quotas()
returns table (
  quota_key text,
  used_count integer,
  quota_limit integer,
  reset_frequency text,
  last_reset_at timestamptz,
  next_reset_at timestamptz,
  subscription_tier text
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_caller uuid := auth.uid();
begin
  if v_caller is null then
    raise exception 'current_quotas needs an authenticated caller' using errcode = '42501';
  end if;
  return query
    select q.quota_key, q.used_count, q.quota_limit, q.reset_frequency, q.last_reset_at, q.next_reset_at,
           q.subscription_tier
    from oneai_private.quotas_of(v_caller) q;
end
$$;

-- claim_quota_warnings as before (20261121040000_quota_warnings.sql), against the effective limit.
create or replace function oneai_private.claim_quota_warnings(p_quota_key text)
returns smallint[]
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller uuid := auth.uid();
  v_old smallint;
  v_new smallint;
  v_limit integer;
begin
  if v_caller is null then
    raise exception 'claim_quota_warnings needs an authenticated caller' using errcode = '42501';
  end if;
  select q.warning_level,
         coalesce(oneai_private.quota_override_in_force(q.user_id, q.quota_key, now()), q.quota_limit)
    into v_old, v_limit
  from public.usage_quotas q
  where q.user_id = v_caller and q.quota_key = p_quota_key
  for update;
  update public.usage_quotas q
     set warning_level = oneai_private.warning_level_for(q.used_count, v_limit)
   where q.user_id = v_caller and q.quota_key = p_quota_key
     and oneai_private.warning_level_for(q.used_count, v_limit) > q.warning_level
  returning q.warning_level into v_new;
  if v_new is null then
    return '{}'::smallint[];
  end if;
  return array(
    select t::smallint from unnest(array[80, 90, 100]) t where t > coalesce(v_old, 0) and t <= v_new order by t
  );
end
$$;

revoke all on function oneai_private.quota_override_in_force(uuid, text, timestamptz) from public, anon;
revoke all on function oneai_private.quotas_of(uuid) from public, anon;
grant execute on function oneai_private.quota_override_in_force(uuid, text, timestamptz)
  to authenticated, service_role;
-- Security invoker: an authenticated caller reads only their own rows through it (RLS).
grant execute on function oneai_private.quotas_of(uuid) to authenticated, service_role;

-- The tier-change rule: whatever changes a user's tier (webhooks, sweeps, support), their overrides end.
create function oneai_private.end_quota_overrides_on_tier_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  with ended as (
    delete from public.quota_overrides o where o.user_id = new.id
    returning o.quota_key, o.quota_limit, o.reason, o.expires_at
  )
  insert into public.audit_log (actor_id, action, target_type, target_id, before, after, reason)
  select null, 'quota_override.end', 'user', new.id::text,
         jsonb_build_object('quota_key', e.quota_key, 'limit', e.quota_limit, 'reason', e.reason,
                            'expires_at', e.expires_at),
         null,
         format('tier changed from %s to %s', old.subscription_tier, new.subscription_tier)
  from ended e;
  return null;
end
$$;

revoke all on function oneai_private.end_quota_overrides_on_tier_change() from public, anon, authenticated;

create trigger users_tier_change_ends_quota_overrides
  after update of subscription_tier on public.users
  for each row when (old.subscription_tier is distinct from new.subscription_tier)
  execute function oneai_private.end_quota_overrides_on_tier_change();

-- ---------------------------------------------------------------------------------------------
-- Analytics. Usage is rolled up as it is recorded, so a range's figures read a few rows per day
-- instead of every usage record:
-- - usage_records.subscription_tier: the tier the user had when the usage happened (margin by tier);
-- - usage_daily: replies, tokens and cost per UTC day, model and tier, in 16 shards by user so that
--   concurrent replies on the same model rarely wait for the same row (a shard's row is locked from the
--   usage insert to the end of that short transaction);
-- - usage_active_days: which users used anything on which day (active users of a range);
-- - subscription_charges: each charge Razorpay reported (`subscription.charged`), the revenue.
-- ---------------------------------------------------------------------------------------------
alter table public.usage_records add column subscription_tier text;

update public.usage_records r set subscription_tier = u.subscription_tier
from public.users u where u.id = r.user_id and r.subscription_tier is null;

create table public.usage_daily (
  day date not null,
  model_id text not null,
  subscription_tier text not null,
  shard smallint not null check (shard between 0 and 15),
  messages bigint not null default 0,
  prompt_tokens bigint not null default 0,
  completion_tokens bigint not null default 0,
  cost numeric(20, 8) not null default 0,
  primary key (day, model_id, subscription_tier, shard)
);

create table public.usage_active_days (
  day date not null,
  user_id uuid not null,
  primary key (day, user_id)
);

alter table public.usage_daily enable row level security;
alter table public.usage_active_days enable row level security;
revoke all on public.usage_daily, public.usage_active_days from public, anon, authenticated;

insert into public.usage_daily (day, model_id, subscription_tier, shard, messages, prompt_tokens,
                                completion_tokens, cost)
select (r.created_at at time zone 'UTC')::date, r.model_id, coalesce(r.subscription_tier, 'free'),
       (hashtext(coalesce(r.user_id::text, '')) & 15)::smallint,
       count(*), sum(r.prompt_tokens), sum(r.completion_tokens), sum(r.cost)
from public.usage_records r
group by 1, 2, 3, 4;

insert into public.usage_active_days (day, user_id)
select distinct (r.created_at at time zone 'UTC')::date, r.user_id
from public.usage_records r where r.user_id is not null;

-- Before insert: the tier of the record's user (kept if the writer gave one).
create function oneai_private.usage_record_tier() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.subscription_tier is null then
    select u.subscription_tier into new.subscription_tier from public.users u where u.id = new.user_id;
  end if;
  return new;
end
$$;

-- After insert: add the record to its day's rollup and mark its user active that day.
create function oneai_private.roll_up_usage_record() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_day date := (new.created_at at time zone 'UTC')::date;
begin
  insert into public.usage_daily as d (day, model_id, subscription_tier, shard, messages, prompt_tokens,
                                      completion_tokens, cost)
  values (v_day, new.model_id, coalesce(new.subscription_tier, 'free'),
          (hashtext(coalesce(new.user_id::text, '')) & 15)::smallint,
          1, new.prompt_tokens, new.completion_tokens, new.cost)
  on conflict (day, model_id, subscription_tier, shard) do update set
    messages = d.messages + 1,
    prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = d.completion_tokens + excluded.completion_tokens,
    cost = d.cost + excluded.cost;
  if new.user_id is not null then
    insert into public.usage_active_days (day, user_id) values (v_day, new.user_id)
    on conflict do nothing;
  end if;
  return null;
end
$$;

revoke all on function oneai_private.usage_record_tier() from public, anon, authenticated;
revoke all on function oneai_private.roll_up_usage_record() from public, anon, authenticated;

create trigger usage_records_tier before insert on public.usage_records
  for each row execute function oneai_private.usage_record_tier();
create trigger usage_records_roll_up after insert on public.usage_records
  for each row execute function oneai_private.roll_up_usage_record();

create table public.subscription_charges (
  id uuid primary key default gen_random_uuid(),
  subscription_id uuid references public.subscriptions (id) on delete set null,
  tier text not null check (tier in ('pro', 'enterprise')),
  provider_payment_id text not null unique,
  -- In the smallest unit of `currency` (cents).
  amount bigint not null check (amount >= 0),
  currency text not null,
  charged_at timestamptz not null
);

create index idx_subscription_charges_charged on public.subscription_charges (charged_at);
create index idx_subscription_charges_subscription
  on public.subscription_charges (subscription_id, charged_at desc);

alter table public.subscription_charges enable row level security;
revoke all on public.subscription_charges from public, anon, authenticated;

-- Admin lists of subscriptions by status, newest first; MRR reads the active ones.
create index idx_subscriptions_status_created on public.subscriptions (status, created_at desc, id desc);
create index idx_subscriptions_created on public.subscriptions (created_at desc, id desc);
