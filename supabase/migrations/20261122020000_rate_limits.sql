-- Rate limits per caller and class (API.md "Rate limits"), shared by every container through this table.
--
-- GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): each row holds the
-- caller's "theoretical arrival time" `tat` for one class. A request costs one emission interval
-- T = 60 s / per_minute; it is admitted when max(tat, now) + T <= now + burst * T, i.e. while the bucket
-- still holds a token. A full bucket is `tat <= now` (or no row at all), so `burst` requests arriving at
-- once are admitted and the next is refused, and tokens come back at one per T.
--
-- Why one conditional UPDATE: the limit is in the UPDATE's WHERE. Under READ COMMITTED a concurrent
-- UPDATE of the same row makes this one wait for the row lock and then re-evaluate the WHERE on the
-- newest version, so concurrent requests on any number of connections can never be admitted past the
-- bucket. A refused request matches no row: it writes nothing and takes no row lock. A caller's first
-- request inserts the row (ON CONFLICT DO NOTHING; when a concurrent first request won that race, the
-- UPDATE is tried again, which then sees the committed row).
--
-- Bounded state: at most one row per user and class. Rows whose `tat` has passed hold nothing (a full
-- bucket is the same as no row); the quota-reset sweep deletes them (oneai.ratelimit.clear_idle_buckets).

-- Unlogged: bucket state is soft (a crash or a failover empties it, which only gives every caller a full
-- bucket), and a transaction whose only write is to an unlogged table writes no WAL, so its commit does
-- not wait for a WAL flush: a read-only request stays as cheap to commit as before its check.
create unlogged table oneai_private.rate_limits (
  user_id uuid not null references public.users (id) on delete cascade,
  bucket text not null check (bucket in ('all', 'chat')),
  tat timestamptz not null,
  primary key (user_id, bucket)
);

create index idx_rate_limits_tat on oneai_private.rate_limits (tat);

revoke all on oneai_private.rate_limits from public, anon, authenticated;

-- Take one request from the caller's bucket `p_bucket`. Always one row:
-- admitted; remaining: whole requests left in the bucket after this one; reset_seconds: until the
-- bucket is full again; retry_after_seconds: until the next request would be admitted (0 when admitted).
create function oneai_private.take_rate_limit(p_bucket text, p_per_minute integer, p_burst integer)
returns table (admitted boolean, remaining integer, reset_seconds double precision, retry_after_seconds double precision)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_caller uuid := auth.uid();
  v_now timestamptz := clock_timestamp();
  v_interval interval;
  v_tat timestamptz;
  v_capacity interval;
begin
  if v_caller is null then
    raise exception 'take_rate_limit needs an authenticated caller' using errcode = '42501';
  end if;
  if p_bucket is null or p_per_minute is null or p_per_minute < 1 or p_burst is null or p_burst < 1 then
    raise exception 'take_rate_limit: a bucket, per_minute >= 1 and burst >= 1 are required'
      using errcode = '22023';
  end if;
  v_interval := make_interval(secs => 60.0 / p_per_minute);
  v_capacity := v_interval * p_burst;

  for attempt in 1..2 loop
    -- The one statement that admits: the bucket's limit is its WHERE, re-checked on the locked row.
    update oneai_private.rate_limits as r
      set tat = greatest(r.tat, v_now) + v_interval
      where r.user_id = v_caller and r.bucket = p_bucket
        and greatest(r.tat, v_now) + v_interval <= v_now + v_capacity
      returning r.tat into v_tat;
    if found then
      exit;
    end if;
    -- No row admitted: either the bucket is empty (refused), or the caller has no row yet.
    select r.tat into v_tat from oneai_private.rate_limits r where r.user_id = v_caller and r.bucket = p_bucket;
    if found then
      return query select false, 0,
        greatest(extract(epoch from (v_tat - v_now)), 0)::double precision,
        greatest(extract(epoch from (v_tat + v_interval - v_capacity - v_now)), 0)::double precision;
      return;
    end if;
    if not exists (select 1 from public.users u where u.id = v_caller) then
      -- No such user: the same round trip answers 401 for it; there is nothing to count against.
      return query select true, p_burst - 1, 0::double precision, 0::double precision;
      return;
    end if;
    insert into oneai_private.rate_limits as r (user_id, bucket, tat)
      values (v_caller, p_bucket, v_now + v_interval)
      on conflict (user_id, bucket) do nothing
      returning r.tat into v_tat;
    if found then
      exit;
    end if;
    -- A concurrent first request inserted the row meanwhile: take from it like everyone else.
  end loop;

  if v_tat is null then
    raise exception 'take_rate_limit: the bucket row disappeared twice' using errcode = '40001';
  end if;
  return query select true,
    greatest(floor(extract(epoch from (v_now + v_capacity - v_tat)) / extract(epoch from v_interval)), 0)::integer,
    greatest(extract(epoch from (v_tat - v_now)), 0)::double precision,
    0::double precision;
end
$$;

revoke execute on function oneai_private.take_rate_limit(text, integer, integer) from public, anon;
grant execute on function oneai_private.take_rate_limit(text, integer, integer) to authenticated;

-- The sweep: delete up to `p_limit` buckets that are full again (nothing to remember). Service role only.
create function oneai_private.clear_idle_rate_limits(p_limit integer)
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
  with idle as (
    select r.user_id, r.bucket from oneai_private.rate_limits r
    where r.tat <= now()
    order by r.tat
    limit p_limit
    for update skip locked
  ), cleared as (
    delete from oneai_private.rate_limits r
    using idle
    where r.user_id = idle.user_id and r.bucket = idle.bucket and r.tat <= now()
    returning 1
  )
  select count(*)::integer from cleared
$$;

revoke execute on function oneai_private.clear_idle_rate_limits(integer) from public, anon, authenticated;
grant execute on function oneai_private.clear_idle_rate_limits(integer) to service_role;
