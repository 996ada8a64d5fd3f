-- Quota warnings: when a reserve takes a quota past 80 %, 90 % or 100 % of its limit, the caller learns
-- which thresholds it crossed, once per threshold per reset window. `usage_quotas.warning_level` holds
-- the highest threshold already announced in the current window (a reset puts it back to 0).

create function oneai_private.warning_level_for(p_used integer, p_limit integer)
returns smallint
language sql
immutable
set search_path = ''
as $$
  select (case
    when p_limit <= 0 then 0
    when p_used::bigint * 100 >= p_limit::bigint * 100 then 100
    when p_used::bigint * 100 >= p_limit::bigint * 90 then 90
    when p_used::bigint * 100 >= p_limit::bigint * 80 then 80
    else 0
  end)::smallint
$$;

-- Called right after an admitted reserve, in the same transaction (which already holds the row lock, so
-- concurrent reserves queue behind it and see the level it set): raises warning_level to the level of
-- the current use and returns the thresholds crossed by doing so (empty when none). The conditional
-- UPDATE is what makes each threshold announced once, however many reserves race.
create function oneai_private.claim_quota_warnings(p_quota_key text)
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
begin
  if v_caller is null then
    raise exception 'claim_quota_warnings needs an authenticated caller' using errcode = '42501';
  end if;
  select q.warning_level into v_old
  from public.usage_quotas q
  where q.user_id = v_caller and q.quota_key = p_quota_key
  for update;
  update public.usage_quotas q
     set warning_level = oneai_private.warning_level_for(q.used_count, q.quota_limit)
   where q.user_id = v_caller and q.quota_key = p_quota_key
     and oneai_private.warning_level_for(q.used_count, q.quota_limit) > q.warning_level
  returning q.warning_level into v_new;
  if v_new is null then
    return '{}'::smallint[];
  end if;
  return array(
    select t::smallint from unnest(array[80, 90, 100]) t where t > coalesce(v_old, 0) and t <= v_new order by t
  );
end
$$;

revoke execute on function oneai_private.warning_level_for(integer, integer) from public;
revoke execute on function oneai_private.claim_quota_warnings(text) from public;
grant execute on function oneai_private.warning_level_for(integer, integer) to authenticated, service_role;
grant execute on function oneai_private.claim_quota_warnings(text) to authenticated, service_role;
