-- Chatbot management (issue 25 items 1-2): the stats of a workspace's chatbots.
--
-- A chatbot's conversations are their users' rows (each member sees only their own under RLS), but its
-- stats count every conversation filed under it. These two functions count for a member of the
-- chatbot's workspace (any role), and for nobody else: a chatbot the caller may not read gives no row.
-- They return counts only, never a conversation or a message.
--
-- What is counted: the conversations with that `chatbot_id` created since the chatbot's `stats_reset_at`
-- (all of them before any reset), and the messages of those conversations (every stored message,
-- revisions included). Days are UTC days.

create function oneai_private.chatbot_stats(p_chatbot_ids uuid[])
returns table (chatbot_id uuid, conversations bigint, messages bigint)
language sql stable security definer
set search_path = ''
as $$
  select b.id,
    (select count(*) from public.conversations c
     where c.chatbot_id = b.id and c.created_at >= coalesce(b.stats_reset_at, '-infinity'::timestamptz)),
    (select count(*) from public.conversations c
     join public.chat_messages m on m.conversation_id = c.id
     where c.chatbot_id = b.id and c.created_at >= coalesce(b.stats_reset_at, '-infinity'::timestamptz))
  from public.chatbots b
  where b.id = any(p_chatbot_ids)
    and b.deleted_at is null
    and b.workspace_id in (select oneai_private.workspaces_with_role('viewer'))
$$;

-- Per UTC day from p_from to p_to (inclusive; every day, zeros included): conversations started that day,
-- and messages written that day in the counted conversations.
create function oneai_private.chatbot_daily_stats(p_chatbot_id uuid, p_from date, p_to date)
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
    select c.id, (c.created_at at time zone 'UTC')::date as started
    from public.conversations c join bot on c.chatbot_id = bot.id
    where c.created_at >= bot.since
      and c.created_at < ((p_to + 1)::timestamp at time zone 'UTC')
  ),
  started as (
    select started as day, count(*) as n from counted
    where started between p_from and p_to
    group by started
  ),
  written as (
    select (m.created_at at time zone 'UTC')::date as day, count(*) as n
    from counted join public.chat_messages m on m.conversation_id = counted.id
    where m.created_at >= (p_from::timestamp at time zone 'UTC')
      and m.created_at < ((p_to + 1)::timestamp at time zone 'UTC')
    group by 1
  )
  select d::date, coalesce(s.n, 0), coalesce(w.n, 0)
  from bot
  cross join generate_series(p_from, p_to, interval '1 day') d
  left join started s on s.day = d::date
  left join written w on w.day = d::date
  order by 1
$$;

revoke execute on function oneai_private.chatbot_stats(uuid[]),
  oneai_private.chatbot_daily_stats(uuid, date, date) from public;
grant execute on function oneai_private.chatbot_stats(uuid[]),
  oneai_private.chatbot_daily_stats(uuid, date, date) to authenticated;

