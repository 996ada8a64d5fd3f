-- Analytics of a workspace's chatbots (issue 28 item 2, API.md "Analytics"): daily rollups kept by the
-- scheduled analytics function, and its visitors' questions with their embeddings (top questions).
--
-- The rollups: one row per workspace, chatbot and UTC day with what `GET /workspaces/{id}/analytics` adds up
-- over a range, so a 90-day answer reads a few hundred rows whatever the number of messages:
-- - `messages`: the visitor messages and replies created that day;
-- - `conversations`, `conversation_messages`: the conversations started that day and all their messages
--   (the average per conversation of a range is the second summed over the first, as the inbox's stats);
-- - `rated`, `by_score`: how many of the conversations started that day are rated, and how many with each
--   score 1..5 (the last rating given counts, as in the inbox);
-- - `ttft_*`, `total_*`: histograms of the replies' ttft_ms and total_ms created that day, in fixed
--   log-scale buckets (oneai_private.latency_bucket: bucket 0 is 0 ms, bucket i >= 1 holds
--   (1.02^(i-2), 1.02^(i-1)] ms), as parallel arrays of the non-empty buckets and their counts. Histograms
--   of days add up bucket by bucket, so a percentile over any range is exact to the bucket: within 1 % of
--   the exact nearest-rank percentile (oneai.analytics.percentiles, docs/architecture.md "Analytics").
--
-- Incremental: statement and row triggers on the visitor tables mark the (workspace, day) pairs a change
-- touches in oneai_private.analytics_dirty_days; the job claims a bounded batch of them, recomputes each
-- pair's rows from the raw rows (replacing them: nothing is ever added to a rollup, so a re-run or a second
-- run at the same time counts nothing twice) and removes the marks it claimed. Late rows, deleted
-- conversations or messages and ratings changed later mark their days like any other change.
--
-- Members of the workspace (viewer and up) read both tables under RLS; only the service writes them.

-- ---------------------------------------------------------------------------------------------
-- The latency histogram's bucket of a duration (the application reads the same rule back)
-- ---------------------------------------------------------------------------------------------
create function oneai_private.latency_bucket(p_ms integer) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_ms <= 0 then 0 else ceil(ln(p_ms::float8) / ln(1.02::float8))::integer + 1 end
$$;

revoke execute on function oneai_private.latency_bucket(integer) from public, anon;
grant execute on function oneai_private.latency_bucket(integer) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The rollups
-- ---------------------------------------------------------------------------------------------
create table public.chatbot_daily_analytics (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  chatbot_id uuid not null,
  day date not null,
  messages integer not null default 0 check (messages >= 0),
  conversations integer not null default 0 check (conversations >= 0),
  conversation_messages integer not null default 0 check (conversation_messages >= 0),
  rated integer not null default 0 check (rated >= 0),
  by_score integer[] not null default '{0,0,0,0,0}' check (cardinality(by_score) = 5),
  ttft_buckets integer[] not null default '{}',
  ttft_counts integer[] not null default '{}',
  total_buckets integer[] not null default '{}',
  total_counts integer[] not null default '{}',
  computed_at timestamptz not null default now(),
  primary key (workspace_id, day, chatbot_id),
  constraint chatbot_daily_analytics_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete cascade,
  constraint chatbot_daily_analytics_histograms check (
    cardinality(ttft_buckets) = cardinality(ttft_counts) and cardinality(total_buckets) = cardinality(total_counts))
);

create index idx_chatbot_daily_analytics_chatbot on public.chatbot_daily_analytics (chatbot_id, day);

-- ---------------------------------------------------------------------------------------------
-- The visitors' questions: each conversation's first visitor message, embedded, in a cluster of similar ones
-- ---------------------------------------------------------------------------------------------
create table public.chatbot_questions (
  conversation_id uuid primary key,
  workspace_id uuid not null,
  chatbot_id uuid not null,
  -- the conversation's start (the range filter of the analytics)
  started_at timestamptz not null,
  -- the message's text as asked (at most 500 characters kept: it is a label)
  question text not null check (char_length(question) between 1 and 500),
  embedding extensions.vector(1536) not null,
  -- the first question of the workspace it was found similar to (itself for a new cluster)
  cluster_id uuid not null,
  created_at timestamptz not null default now(),
  constraint chatbot_questions_conversation foreign key (conversation_id, workspace_id)
    references public.visitor_conversations (id, workspace_id) on delete cascade,
  constraint chatbot_questions_chatbot foreign key (chatbot_id, workspace_id)
    references public.chatbots (id, workspace_id) on delete cascade
);

create index idx_chatbot_questions_workspace on public.chatbot_questions (workspace_id, started_at);
create index idx_chatbot_questions_cluster on public.chatbot_questions (cluster_id, started_at);
-- The cluster leaders of a workspace, compared exactly with a new question (no approximate index: an HNSW
-- scan filtered to one workspace's leaders afterwards could miss the nearest one and split a cluster).
create index idx_chatbot_questions_leaders on public.chatbot_questions (workspace_id)
  where cluster_id = conversation_id;

alter table public.chatbot_daily_analytics enable row level security;
alter table public.chatbot_questions enable row level security;
revoke all on public.chatbot_daily_analytics, public.chatbot_questions from anon, authenticated;
grant select on public.chatbot_daily_analytics, public.chatbot_questions to authenticated;
create policy chatbot_daily_analytics_members_read on public.chatbot_daily_analytics for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
-- The questions are visitors' words: the editors' and above, as the visitor tables are (the inbox).
create policy chatbot_questions_editors_read on public.chatbot_questions for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('editor')));
grant all on public.chatbot_daily_analytics, public.chatbot_questions to service_role;

-- ---------------------------------------------------------------------------------------------
-- What changed since the job's last run: (workspace, UTC day) pairs to recompute
-- ---------------------------------------------------------------------------------------------
-- One unclaimed mark per pair (the partial unique index; a change to a pair already marked writes nothing).
-- The job claims marks in a short transaction (claimed_at, claim), recomputes, and deletes what it claimed;
-- a change during the recompute makes a new unclaimed mark, so it is recomputed by the next batch or run. A
-- claim older than the job's lease (a run that died) is claimed again.
create table oneai_private.analytics_dirty_days (
  id bigint generated always as identity primary key,
  workspace_id uuid not null,
  day date not null,
  marked_at timestamptz not null default now(),
  claimed_at timestamptz,
  claim uuid
);

create unique index idx_analytics_dirty_days_unclaimed on oneai_private.analytics_dirty_days (workspace_id, day)
  where claimed_at is null;
create index idx_analytics_dirty_days_claim on oneai_private.analytics_dirty_days (claim) where claim is not null;

revoke all on oneai_private.analytics_dirty_days from public, anon, authenticated;
grant all on oneai_private.analytics_dirty_days to service_role;

-- The triggers below write the marks as their owner, whoever changed the visitor rows (the widget's anon
-- functions, an editor's delete in the inbox, the service).
create function oneai_private.mark_analytics_days(p_workspace uuid[], p_day date[]) returns void
language sql volatile security definer
set search_path = ''
as $$
  insert into oneai_private.analytics_dirty_days (workspace_id, day)
  select distinct t.workspace_id, t.day from unnest(p_workspace, p_day) t(workspace_id, day)
  where t.workspace_id is not null and t.day is not null
  order by 1, 2
  on conflict (workspace_id, day) where claimed_at is null do nothing
$$;

revoke execute on function oneai_private.mark_analytics_days(uuid[], date[]) from public, anon, authenticated;

-- Messages added or removed: the day each was sent, and the day its conversation started (its
-- conversation_messages).
create function oneai_private.analytics_messages_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_workspaces uuid[];
  v_days date[];
begin
  if tg_op = 'INSERT' then
    select array_agg(d.workspace_id), array_agg(d.day) into v_workspaces, v_days from (
      select n.workspace_id, (n.created_at at time zone 'UTC')::date as day from new_rows n
      union
      select vc.workspace_id, (vc.started_at at time zone 'UTC')::date
      from public.visitor_conversations vc where vc.id in (select n.conversation_id from new_rows n)
    ) d;
  else
    select array_agg(d.workspace_id), array_agg(d.day) into v_workspaces, v_days from (
      select o.workspace_id, (o.created_at at time zone 'UTC')::date as day from old_rows o
      union
      select vc.workspace_id, (vc.started_at at time zone 'UTC')::date
      from public.visitor_conversations vc where vc.id in (select o.conversation_id from old_rows o)
    ) d;
  end if;
  if v_workspaces is not null then
    perform oneai_private.mark_analytics_days(v_workspaces, v_days);
  end if;
  return null;
end
$$;

create trigger visitor_messages_analytics_insert after insert on public.visitor_messages
  referencing new table as new_rows for each statement execute function oneai_private.analytics_messages_changed();
create trigger visitor_messages_analytics_delete after delete on public.visitor_messages
  referencing old table as old_rows for each statement execute function oneai_private.analytics_messages_changed();

-- A message whose timings, role or time change (the reply's timings are written when it ends): its days,
-- before and after. The text alone changing (a streamed reply) touches no figure and marks nothing.
create function oneai_private.analytics_message_updated() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform oneai_private.mark_analytics_days(
    array[old.workspace_id, new.workspace_id],
    array[(old.created_at at time zone 'UTC')::date, (new.created_at at time zone 'UTC')::date]);
  return null;
end
$$;

create trigger visitor_messages_analytics_update after update on public.visitor_messages
  for each row when (
    (old.role, old.created_at, old.ttft_ms, old.total_ms, old.conversation_id)
      is distinct from (new.role, new.created_at, new.ttft_ms, new.total_ms, new.conversation_id))
  execute function oneai_private.analytics_message_updated();

-- Conversations started: their day.
create function oneai_private.analytics_conversations_started() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_workspaces uuid[];
  v_days date[];
begin
  select array_agg(n.workspace_id), array_agg((n.started_at at time zone 'UTC')::date)
    into v_workspaces, v_days from new_rows n;
  if v_workspaces is not null then
    perform oneai_private.mark_analytics_days(v_workspaces, v_days);
  end if;
  return null;
end
$$;

create trigger visitor_conversations_analytics_insert after insert on public.visitor_conversations
  referencing new table as new_rows for each statement
  execute function oneai_private.analytics_conversations_started();

-- A rating given or changed, a start moved, a chatbot purged: the start's day, before and after.
create function oneai_private.analytics_conversation_updated() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform oneai_private.mark_analytics_days(
    array[old.workspace_id, new.workspace_id],
    array[(old.started_at at time zone 'UTC')::date, (new.started_at at time zone 'UTC')::date]);
  return null;
end
$$;

create trigger visitor_conversations_analytics_update after update on public.visitor_conversations
  for each row when (
    (old.rating, old.started_at, old.chatbot_id) is distinct from (new.rating, new.started_at, new.chatbot_id))
  execute function oneai_private.analytics_conversation_updated();

-- A conversation deleted: its start's day and every day it has messages on, read before the cascade
-- removes them (an AFTER trigger would find them gone).
create function oneai_private.analytics_conversation_deleted() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_days date[];
begin
  select array_agg(d.day) into v_days from (
    select (old.started_at at time zone 'UTC')::date as day
    union
    select distinct (m.created_at at time zone 'UTC')::date from public.visitor_messages m
    where m.conversation_id = old.id
  ) d;
  perform oneai_private.mark_analytics_days(array_fill(old.workspace_id, array[cardinality(v_days)]), v_days);
  return old;
end
$$;

create trigger visitor_conversations_analytics_delete before delete on public.visitor_conversations
  for each row execute function oneai_private.analytics_conversation_deleted();

revoke execute on function oneai_private.analytics_messages_changed(), oneai_private.analytics_message_updated(),
  oneai_private.analytics_conversations_started(), oneai_private.analytics_conversation_updated(),
  oneai_private.analytics_conversation_deleted() from public, anon, authenticated;

-- What the rows already there need: every (workspace, day) with a conversation or a message.
insert into oneai_private.analytics_dirty_days (workspace_id, day)
select distinct d.workspace_id, d.day from (
  select vc.workspace_id, (vc.started_at at time zone 'UTC')::date as day from public.visitor_conversations vc
  union
  select m.workspace_id, (m.created_at at time zone 'UTC')::date from public.visitor_messages m
) d
on conflict (workspace_id, day) where claimed_at is null do nothing;
