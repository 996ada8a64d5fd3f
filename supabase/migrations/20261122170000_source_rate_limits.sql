-- Rate limits for anonymous callers (API.md "Documentation": feedback is rate limited, anonymous allowed),
-- keyed by the caller's source, never by who they are.
--
-- The same GCRA as the user buckets of 20261122020000_rate_limits.sql (one timestamp `tat` per bucket; a
-- request costs T = 60 s / per_minute and is admitted while max(tat, now) + T <= now + burst * T; the
-- limit is the WHERE of one conditional UPDATE, re-checked on the locked row, so concurrent requests on
-- any number of connections cannot be admitted past the bucket; a refusal writes nothing). The arithmetic
-- both functions share is in the two helpers below.
--
-- Privacy: the row's key is a keyed hash (sha256 over a random key generated here and the caller's
-- source), so neither the table nor a dump of it holds an IP address, and without the key nobody can
-- test a guessed address against it. The key never leaves the database: only the security definer
-- function below reads it. The application sends the source already digested (sha256 of the address),
-- so the statement text (which a server log may quote) carries no address in clear either (an unkeyed
-- digest of an IPv4 address can be reversed by trying them all: that is why the stored key is keyed).

-- The random key of the source hash: one row. Logged (unlike the buckets): losing it would only reset
-- every anonymous bucket, but there is no reason to.
create table oneai_private.source_hash_key (
  singleton boolean primary key default true check (singleton),
  key bytea not null check (octet_length(key) >= 32)
);

-- gen_random_uuid() draws from the server's strong random source (122 random bits each); two of them
-- make a 32-byte key without needing pgcrypto.
insert into oneai_private.source_hash_key (key)
  values (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

revoke all on oneai_private.source_hash_key from public, anon, authenticated;

-- Unlogged for the reason the user buckets are (soft state; a request that writes only here writes no WAL).
create unlogged table oneai_private.source_rate_limits (
  source_hash bytea not null check (octet_length(source_hash) = 32),
  bucket text not null check (bucket in ('feedback')),
  tat timestamptz not null,
  primary key (source_hash, bucket)
);

create index idx_source_rate_limits_tat on oneai_private.source_rate_limits (tat);

revoke all on oneai_private.source_rate_limits from public, anon, authenticated;

-- The GCRA step shared by the bucket functions: the bucket's next `tat` if this request is taken.
create function oneai_private.gcra_next_tat(p_tat timestamptz, p_now timestamptz, p_interval interval)
returns timestamptz
language sql immutable parallel safe
set search_path = ''
as $$
  select greatest(p_tat, p_now) + p_interval
$$;

-- The outcome row once the bucket's `tat` is known: admitted (then `p_tat` is the new tat) or refused
-- (then `p_tat` is the bucket's unchanged tat). Same columns as oneai_private.take_rate_limit.
create function oneai_private.gcra_outcome(
  p_admitted boolean, p_tat timestamptz, p_now timestamptz, p_interval interval, p_capacity interval
)
returns table (admitted boolean, remaining integer, reset_seconds double precision, retry_after_seconds double precision)
language sql immutable parallel safe
set search_path = ''
as $$
  select p_admitted,
    case when p_admitted
      then greatest(floor(extract(epoch from (p_now + p_capacity - p_tat)) / extract(epoch from p_interval)), 0)::integer
      else 0
    end,
    greatest(extract(epoch from (p_tat - p_now)), 0)::double precision,
    case when p_admitted
      then 0::double precision
      else greatest(extract(epoch from (p_tat + p_interval - p_capacity - p_now)), 0)::double precision
    end
$$;

revoke execute on function oneai_private.gcra_next_tat(timestamptz, timestamptz, interval) from public;
revoke execute on function oneai_private.gcra_outcome(boolean, timestamptz, timestamptz, interval, interval)
  from public;

-- What anonymous callers may call, and nothing else: `anon` gets no usage on oneai_private (its tables and
-- functions stay out of reach); this schema holds only the function below, which reaches them as its owner.
-- Like oneai_private it is not one of the schemas Supabase's Data API exposes, so only our functions call it.
create schema oneai_anon;

revoke all on schema oneai_anon from public;
grant usage on schema oneai_anon to anon;
alter default privileges in schema oneai_anon revoke execute on functions from public;

-- Take one request from the bucket `p_bucket` of the source whose sha256 digest is `p_source_digest`
-- (64 hex digits). Always one row, as oneai_private.take_rate_limit.
create function oneai_anon.take_source_rate_limit(
  p_source_digest text, p_bucket text, p_per_minute integer, p_burst integer
)
returns table (admitted boolean, remaining integer, reset_seconds double precision, retry_after_seconds double precision)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_source bytea;
  v_interval interval;
  v_capacity interval;
  v_tat timestamptz;
begin
  if p_source_digest is null or p_source_digest !~ '^[0-9a-f]{64}$' then
    raise exception 'take_source_rate_limit: the source must be a sha256 digest in hex' using errcode = '22023';
  end if;
  if p_bucket is null or p_per_minute is null or p_per_minute < 1 or p_burst is null or p_burst < 1 then
    raise exception 'take_source_rate_limit: a bucket, per_minute >= 1 and burst >= 1 are required'
      using errcode = '22023';
  end if;
  select sha256(k.key || decode(p_source_digest, 'hex')) into strict v_source from oneai_private.source_hash_key k;
  v_interval := make_interval(secs => 60.0 / p_per_minute);
  v_capacity := v_interval * p_burst;

  for attempt in 1..2 loop
    -- The one statement that admits: the bucket's limit is its WHERE, re-checked on the locked row.
    update oneai_private.source_rate_limits as r
      set tat = oneai_private.gcra_next_tat(r.tat, v_now, v_interval)
      where r.source_hash = v_source and r.bucket = p_bucket
        and oneai_private.gcra_next_tat(r.tat, v_now, v_interval) <= v_now + v_capacity
      returning r.tat into v_tat;
    if found then
      return query select * from oneai_private.gcra_outcome(true, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
    select r.tat into v_tat from oneai_private.source_rate_limits r
      where r.source_hash = v_source and r.bucket = p_bucket;
    if found then
      return query select * from oneai_private.gcra_outcome(false, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
    insert into oneai_private.source_rate_limits as r (source_hash, bucket, tat)
      values (v_source, p_bucket, v_now + v_interval)
      on conflict (source_hash, bucket) do nothing
      returning r.tat into v_tat;
    if found then
      return query select * from oneai_private.gcra_outcome(true, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
    -- A concurrent first request from the same source inserted the row meanwhile: take from it.
  end loop;
  raise exception 'take_source_rate_limit: the bucket row disappeared twice' using errcode = '40001';
end
$$;

revoke execute on function oneai_anon.take_source_rate_limit(text, text, integer, integer) from public;
grant execute on function oneai_anon.take_source_rate_limit(text, text, integer, integer) to anon;

-- The sweep's share for these buckets (oneai.ratelimit.clear_idle_buckets): as clear_idle_rate_limits.
create function oneai_private.clear_idle_source_rate_limits(p_limit integer)
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
  with idle as (
    select r.source_hash, r.bucket from oneai_private.source_rate_limits r
    where r.tat <= now()
    order by r.tat
    limit p_limit
    for update skip locked
  ), cleared as (
    delete from oneai_private.source_rate_limits r
    using idle
    where r.source_hash = idle.source_hash and r.bucket = idle.bucket and r.tat <= now()
    returning 1
  )
  select count(*)::integer from cleared
$$;

revoke execute on function oneai_private.clear_idle_source_rate_limits(integer) from public, anon, authenticated;
grant execute on function oneai_private.clear_idle_source_rate_limits(integer) to service_role;
