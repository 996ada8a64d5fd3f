-- Both GCRA bucket functions (latest: 20261123000000_rate_limit_first_request_race.sql) read the clock once,
-- on entry, and judged the bucket with that reading even when their UPDATE had first waited (for the row
-- lock of a concurrent request's transaction, or only for a busy CPU). A request admitted meanwhile, whose
-- clock read came later, had moved the bucket's `tat` up to its own `now + burst * T`; judged from the
-- older reading, that bucket (a) answered a wait above one emission interval T (`Retry-After: 61` for one
-- token a minute, seen under load), and (b) looked out of tokens when it still held one (a burst of two
-- admitting one of two simultaneous requests).
--
-- Now a request that the UPDATE did not admit reads the bucket row again and only then reads the clock, so
-- its `now` is no earlier than that of any request whose write it sees: a refusal is judged, and its wait
-- computed, from that reading (never more than T), and a row that holds a token at that reading is taken
-- by the next try of the UPDATE, like every other request. An UPDATE that admits with the older reading
-- is only stricter (the row's newer `tat` left it fewer tokens). Signatures and grants stay as they were.

create or replace function oneai_private.take_rate_limit(p_bucket text, p_per_minute integer, p_burst integer)
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

  for attempt in 1..3 loop
    -- The one statement that admits: the bucket's limit is its WHERE, re-checked on the locked row.
    update oneai_private.rate_limits as r
      set tat = oneai_private.gcra_next_tat(r.tat, v_now, v_interval)
      where r.user_id = v_caller and r.bucket = p_bucket
        and oneai_private.gcra_next_tat(r.tat, v_now, v_interval) <= v_now + v_capacity
      returning r.tat into v_tat;
    if found then
      return query select * from oneai_private.gcra_outcome(true, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
    select r.tat into v_tat from oneai_private.rate_limits r where r.user_id = v_caller and r.bucket = p_bucket;
    -- The clock after the row is read: no earlier than the reading of any request whose write it shows.
    v_now := clock_timestamp();
    if found then
      if oneai_private.gcra_next_tat(v_tat, v_now, v_interval) > v_now + v_capacity then
        return query select * from oneai_private.gcra_outcome(false, v_tat, v_now, v_interval, v_capacity);
        return;
      end if;
      continue;  -- a token the UPDATE missed (a row not seen yet, or an older clock reading): try again
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
      return query select * from oneai_private.gcra_outcome(true, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
    -- A concurrent first request inserted the row meanwhile: take from it like everyone else.
  end loop;
  raise exception 'take_rate_limit: the bucket row kept changing' using errcode = '40001';
end
$$;

create or replace function oneai_anon.take_source_rate_limit(
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

  for attempt in 1..3 loop
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
    v_now := clock_timestamp();  -- as in take_rate_limit: the clock after the row is read
    if found then
      if oneai_private.gcra_next_tat(v_tat, v_now, v_interval) > v_now + v_capacity then
        return query select * from oneai_private.gcra_outcome(false, v_tat, v_now, v_interval, v_capacity);
        return;
      end if;
      continue;  -- as in take_rate_limit: a token the UPDATE missed, try again
    end if;
    insert into oneai_private.source_rate_limits as r (source_hash, bucket, tat)
      values (v_source, p_bucket, v_now + v_interval)
      on conflict (source_hash, bucket) do nothing
      returning r.tat into v_tat;
    if found then
      return query select * from oneai_private.gcra_outcome(true, v_tat, v_now, v_interval, v_capacity);
      return;
    end if;
  end loop;
  raise exception 'take_source_rate_limit: the bucket row kept changing' using errcode = '40001';
end
$$;
