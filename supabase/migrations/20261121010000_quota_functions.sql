-- Quota reservation, refund and reading, for the caller only (auth.uid()).
--
-- Why functions: a reserve must be ONE conditional UPDATE. The plan's check-then-increment (read
-- used_count, compare, then `used_count = used_count + 1`) lets concurrent requests all pass the check
-- before any of them writes, so a limit is exceeded. Here the limit is part of the UPDATE's WHERE: under
-- READ COMMITTED a concurrent UPDATE of the same row makes this one wait for the row lock and then
-- re-evaluate the WHERE on the row's newest version, so the row can never go over its limit, however
-- many requests race. A due reset is applied by that same UPDATE, so correctness never depends on a
-- scheduled sweep.
--
-- Where: schema `oneai_private`. Supabase's PostgREST serves only the schemas in its `db-schemas`
-- setting (`public`, plus `graphql_public`), so nothing in this schema is reachable through the Data
-- API or GraphQL with a user's JWT. These functions are called only by our own server connection,
-- which switches to the `authenticated` role with the caller's JWT claims per transaction
-- (`Database.user_transaction`). `usage_quotas` stays read-only for `authenticated` (its RLS policy
-- allows SELECT of the caller's own rows only); the writes happen here, as the owner, for auth.uid().

create schema oneai_private;

revoke all on schema oneai_private from public;
grant usage on schema oneai_private to authenticated, service_role;

-- Functions created later in this schema are not executable by everyone unless granted on purpose.
alter default privileges in schema oneai_private revoke execute on functions from public;

-- Reserve `p_units` of the caller's quota `p_quota_key`.
--
-- Admitted: the row's new state, in the window the units were counted in (`last_reset_at` identifies
-- that window; pass it back to refund_quota). A due reset (`next_reset_at <= now()`) is applied first:
-- used_count restarts from 0, the window starts now, the next reset comes from public.next_quota_reset,
-- the warning level goes back to 0.
--
-- Not admitted: the current state with that due reset applied in the result only, admitted = false,
-- and nothing written. A refused request changes nothing: it holds no row lock for the rest of its
-- transaction and writes no WAL, so a burst of refused requests does not queue on the row. The due
-- reset is written by the next admitted reserve, so a new window starts with its first admitted
-- use (for `3hour` that is when its three hours start; `daily` and `monthly` end at the same UTC
-- boundary either way). No quota row for the key: admitted = false with limit 0 and the user's tier,
-- so the caller can still answer 429.
create function oneai_private.reserve_quota(p_quota_key text, p_units integer)
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
begin
  if v_caller is null then
    raise exception 'reserve_quota needs an authenticated caller' using errcode = '42501';
  end if;
  if p_quota_key is null or p_units is null or p_units < 1 then
    raise exception 'reserve_quota: a quota key and units >= 1 are required (got %, %)', p_quota_key, p_units
      using errcode = '22023';
  end if;

  -- The one statement that admits. Its WHERE holds the limit, re-checked on the locked row.
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
        and (case when q.next_reset_at <= v_now then 0 else q.used_count end)::bigint + p_units <= q.quota_limit
      returning q.quota_key, q.used_count, q.quota_limit, q.reset_frequency, q.last_reset_at, q.next_reset_at,
                q.subscription_tier
    )
    select r.quota_key, r.used_count, r.quota_limit, r.reset_frequency, r.last_reset_at, r.next_reset_at,
           r.subscription_tier, true
    from reserved r;
  if found then
    return;
  end if;

  -- Refused: report the state (a due reset applied in the result, not written).
  return query
    select q.quota_key,
           case when q.next_reset_at <= v_now then 0 else q.used_count end,
           q.quota_limit,
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

-- Give back `p_units` reserved in the window that started at `p_window_started_at` (the
-- `last_reset_at` that reserve_quota returned). Only within that same window, and only while it is
-- still open: after a reset, used_count counts the new window, and giving units back would eat into
-- it. Never below 0. True when units were given back.
create function oneai_private.refund_quota(p_quota_key text, p_units integer, p_window_started_at timestamptz)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller uuid := auth.uid();
begin
  if v_caller is null then
    raise exception 'refund_quota needs an authenticated caller' using errcode = '42501';
  end if;
  if p_quota_key is null or p_units is null or p_units < 1 or p_window_started_at is null then
    raise exception 'refund_quota: a quota key, units >= 1 and the window start are required'
      using errcode = '22023';
  end if;
  update public.usage_quotas as q set
    used_count = greatest(q.used_count - p_units, 0)
  where q.user_id = v_caller
    and q.quota_key = p_quota_key
    and q.last_reset_at = p_window_started_at
    and q.next_reset_at > now()
    and q.used_count > 0;
  return found;
end
$$;

-- The caller's quotas as they stand now: a due reset is applied in the result (used 0, the window
-- starting now, the next reset from public.next_quota_reset), computed rather than written, so what a
-- user sees never waits for the sweep. Read-only; the row is written by the next admitted reserve.
-- Security invoker: reading needs nothing beyond the caller's own SELECT under RLS.
create function oneai_private.current_quotas()
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
  v_now timestamptz := now();
begin
  if v_caller is null then
    raise exception 'current_quotas needs an authenticated caller' using errcode = '42501';
  end if;
  return query
    select q.quota_key,
           case when q.next_reset_at <= v_now then 0 else q.used_count end,
           q.quota_limit,
           q.reset_frequency,
           case when q.next_reset_at <= v_now then v_now else q.last_reset_at end,
           case when q.next_reset_at <= v_now
                then public.next_quota_reset(q.reset_frequency, v_now)
                else q.next_reset_at end,
           q.subscription_tier
    from public.usage_quotas q
    where q.user_id = v_caller
    order by q.quota_key;
end
$$;

revoke all on function oneai_private.reserve_quota(text, integer) from public, anon;
revoke all on function oneai_private.refund_quota(text, integer, timestamptz) from public, anon;
revoke all on function oneai_private.current_quotas() from public, anon;
grant execute on function oneai_private.reserve_quota(text, integer) to authenticated, service_role;
grant execute on function oneai_private.refund_quota(text, integer, timestamptz) to authenticated, service_role;
grant execute on function oneai_private.current_quotas() to authenticated, service_role;
