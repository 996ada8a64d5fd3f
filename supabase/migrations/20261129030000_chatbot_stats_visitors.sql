-- A chatbot's stats count its visitors' conversations too, and their satisfaction (issue 25 item 1 with
-- the widget of issue 27: docs/api/chatbots.md "stats").
--
-- 20261125020000_chatbot_admin.sql counted the members' conversations only (the widget came after). Now:
-- - `conversations`: the members' conversations with the chatbot and its visitor conversations, started
--   since `stats_reset_at`;
-- - `messages`: their messages (a visitor conversation's `message_count`, which the public chat keeps);
-- - `satisfaction`: the average of the visitors' 1-5 ratings of those conversations, two decimals; null
--   while none is rated.
-- Still: counts only, for a member (any role) of the chatbot's workspace, nobody else. The return type
-- changes (satisfaction), so the list's function is dropped and made again.

drop function oneai_private.chatbot_stats(uuid[]);

create function oneai_private.chatbot_stats(p_chatbot_ids uuid[])
returns table (chatbot_id uuid, conversations bigint, messages bigint, satisfaction numeric)
language sql stable security definer
set search_path = ''
as $$
  select b.id,
    (select count(*) from public.conversations c
     where c.chatbot_id = b.id and c.created_at >= coalesce(b.stats_reset_at, '-infinity'::timestamptz))
      + v.conversations,
    (select count(*) from public.conversations c
     join public.chat_messages m on m.conversation_id = c.id
     where c.chatbot_id = b.id and c.created_at >= coalesce(b.stats_reset_at, '-infinity'::timestamptz))
      + v.messages,
    v.satisfaction
  from public.chatbots b
  cross join lateral (
    select count(*) as conversations, coalesce(sum(vc.message_count), 0) as messages,
           round(avg(vc.rating), 2) as satisfaction
    from public.visitor_conversations vc
    where vc.chatbot_id = b.id and vc.started_at >= coalesce(b.stats_reset_at, '-infinity'::timestamptz)
  ) v
  where b.id = any(p_chatbot_ids)
    and b.deleted_at is null
    and b.workspace_id in (select oneai_private.workspaces_with_role('viewer'))
$$;

-- Per UTC day from p_from to p_to (inclusive; every day, zeros included): conversations started that day,
-- and messages written that day in the counted conversations, members' and visitors' alike.
create or replace function oneai_private.chatbot_daily_stats(p_chatbot_id uuid, p_from date, p_to date)
returns table (day date, conversations bigint, messages bigint)
language sql stable security definer
set search_path = ''
as $$
  with bot as (
    select b.id, coalesce(b.stats_reset_at, '-infinity'::timestamptz) as since
    from public.chatbots b
    where b.id = p_chatbot_id
      and b.deleted_at is null
      and b.workspace_id in (select oneai_private.workspaces_with_role('viewer'))
  ),
  counted as (
    select c.id, (c.created_at at time zone 'UTC')::date as started, false as visitor
    from public.conversations c join bot on c.chatbot_id = bot.id
    where c.created_at >= bot.since
      and c.created_at < ((p_to + 1)::timestamp at time zone 'UTC')
    union all
    select vc.id, (vc.started_at at time zone 'UTC')::date, true
    from public.visitor_conversations vc join bot on vc.chatbot_id = bot.id
    where vc.started_at >= bot.since
      and vc.started_at < ((p_to + 1)::timestamp at time zone 'UTC')
  ),
  started as (
    select started as day, count(*) as n from counted
    where started between p_from and p_to
    group by started
  ),
  written as (
    select day, sum(n) as n from (
      select (m.created_at at time zone 'UTC')::date as day, count(*) as n
      from counted join public.chat_messages m on m.conversation_id = counted.id
      where not counted.visitor
        and m.created_at >= (p_from::timestamp at time zone 'UTC')
        and m.created_at < ((p_to + 1)::timestamp at time zone 'UTC')
      group by 1
      union all
      select (m.created_at at time zone 'UTC')::date, count(*)
      from counted join public.visitor_messages m on m.conversation_id = counted.id
      where counted.visitor
        and m.created_at >= (p_from::timestamp at time zone 'UTC')
        and m.created_at < ((p_to + 1)::timestamp at time zone 'UTC')
      group by 1
    ) both_kinds
    group by day
  )
  select d::date, coalesce(s.n, 0), coalesce(w.n, 0)::bigint
  from bot
  cross join generate_series(p_from, p_to, interval '1 day') d
  left join started s on s.day = d::date
  left join written w on w.day = d::date
  order by 1
$$;

revoke execute on function oneai_private.chatbot_stats(uuid[]) from public;
grant execute on function oneai_private.chatbot_stats(uuid[]) to authenticated;
