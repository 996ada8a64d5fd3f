-- Chatting with a chatbot (issue 25 items 3, 4, 5, 7): the chat turn's one-round-trip prepare and finish
-- (20261122110000_chat_turn_one_round_trip.sql) learn the chatbot turn, the workspace's daily message
-- counter admits its replies, and the knowledge search's full-text half can be narrowed to a chatbot's
-- documents inside the statement.
--
-- A chatbot turn is a turn whose body names `chatbot_id`, or any turn in a conversation filed under a
-- chatbot (a follow-up, an edit, a regeneration: the conversation's chatbot answers, whatever the body
-- says; a body naming another chatbot, or a chatbot on a plain conversation, is refused). Its model is the
-- chatbot's; its cost is the workspace's: one unit of the workspace's message counter of the day, under
-- the limit of the owner's tier (`widget_messages_per_day`, passed in by the application, which owns the
-- limits), instead of a unit of the member's own quota. The member's usage_quotas are not touched.
--
-- Still SECURITY INVOKER, still one round trip: the chatbot and its workspace are read under the caller's
-- RLS (a chatbot of a workspace they are not a member of is simply not found); only the counter, which no
-- member may write directly, and the owner's tier, which members cannot read, go through the definer
-- functions below, which check the membership themselves.

-- ---------------------------------------------------------------------------------------------
-- The workspace's messages of a day (UTC)
-- ---------------------------------------------------------------------------------------------
create table public.workspace_message_counts (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  day date not null,
  used integer not null default 0 check (used >= 0),
  primary key (workspace_id, day)
);

alter table public.workspace_message_counts enable row level security;
revoke all on public.workspace_message_counts from anon, authenticated;
-- Members read their workspaces' counts (analytics, limits); only the functions below write them.
grant select on public.workspace_message_counts to authenticated;
create policy workspace_message_counts_members_read on public.workspace_message_counts for select
  to authenticated using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
grant all on public.workspace_message_counts to service_role;

-- One unit of the workspace's messages of today, if the owner's tier allows it. `p_limits`: the limit of
-- each tier (`{"free": 100, ...}`). One statement takes the unit with the limit in its WHERE: a concurrent
-- admission waits for the row lock and re-checks the limit on the row it then sees, so the counter never
-- passes the limit. Answers {admitted, used, limit, tier, day}.
create function oneai_private.admit_workspace_message(p_workspace_id uuid, p_limits jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_tier text;
  v_limit integer;
  v_day date := (now() at time zone 'utc')::date;
  v_used integer;
begin
  if not oneai_private.has_workspace_role(p_workspace_id, 'viewer') then
    raise exception 'not a member of this workspace' using errcode = '42501';
  end if;
  select u.subscription_tier into v_tier
    from public.workspaces w join public.users u on u.id = w.owner_id
   where w.id = p_workspace_id;
  v_limit := coalesce((p_limits->>v_tier)::integer, (p_limits->>'free')::integer, 0);
  if v_limit >= 1 then
    insert into public.workspace_message_counts as c (workspace_id, day, used)
    values (p_workspace_id, v_day, 1)
    on conflict (workspace_id, day) do update set used = c.used + 1 where c.used < v_limit
    returning c.used into v_used;
  end if;
  if v_used is not null then
    return jsonb_build_object('admitted', true, 'used', v_used, 'limit', v_limit, 'tier', v_tier, 'day', v_day);
  end if;
  select c.used into v_used from public.workspace_message_counts c
   where c.workspace_id = p_workspace_id and c.day = v_day;
  return jsonb_build_object(
    'admitted', false, 'used', coalesce(v_used, 0), 'limit', v_limit, 'tier', v_tier, 'day', v_day);
end
$$;

-- The unit of `p_day` back (the model failed before its first token, or the chatbot answered with its
-- fixed message); never below zero.
create function oneai_private.refund_workspace_message(p_workspace_id uuid, p_day date)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not oneai_private.has_workspace_role(p_workspace_id, 'viewer') then
    raise exception 'not a member of this workspace' using errcode = '42501';
  end if;
  update public.workspace_message_counts c set used = c.used - 1
   where c.workspace_id = p_workspace_id and c.day = p_day and c.used > 0;
  return found;
end
$$;

-- A chatbot reply's usage record: the caller's, naming the workspace and the chatbot of the conversation
-- (read here, not taken from the caller). record_usage (20261121020000) stays the member's own.
create function oneai_private.record_workspace_usage(
  p_conversation_id uuid,
  p_message_id uuid,
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
  v_caller uuid := auth.uid();
  v_conversation public.conversations;
  v_recorded uuid;
begin
  select c.* into v_conversation from public.conversations c
   join public.chat_messages m on m.conversation_id = c.id
   where c.id = p_conversation_id and m.id = p_message_id and m.user_id = v_caller and c.user_id = v_caller;
  if not found or v_conversation.workspace_id is null then
    raise exception 'message not found' using errcode = 'P0002';
  end if;
  insert into public.usage_records (
    user_id, conversation_id, message_id, quota_key, requested_model, model_id, generation_id,
    prompt_tokens, completion_tokens, cost, status, workspace_id, chatbot_id)
  values (
    v_caller, p_conversation_id, p_message_id, p_quota_key, p_requested_model, p_model_id, p_generation_id,
    greatest(coalesce(p_prompt_tokens, 0), 0), greatest(coalesce(p_completion_tokens, 0), 0),
    greatest(coalesce(p_cost, 0), 0), p_status, v_conversation.workspace_id, v_conversation.chatbot_id)
  returning id into v_recorded;
  return v_recorded;
end
$$;

revoke execute on function oneai_private.admit_workspace_message(uuid, jsonb) from public, anon;
revoke execute on function oneai_private.refund_workspace_message(uuid, date) from public, anon;
revoke execute on function oneai_private.record_workspace_usage(
  uuid, uuid, text, text, text, text, integer, integer, numeric, text) from public, anon;
grant execute on function oneai_private.admit_workspace_message(uuid, jsonb) to authenticated;
grant execute on function oneai_private.refund_workspace_message(uuid, date) to authenticated;
grant execute on function oneai_private.record_workspace_usage(
  uuid, uuid, text, text, text, text, integer, integer, numeric, text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Messages carry their sources
-- ---------------------------------------------------------------------------------------------
create or replace function oneai_private.chat_message_json(m public.chat_messages)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', m.id, 'conversation_id', m.conversation_id, 'role', m.role, 'content', m.content,
    'model_id', m.model_id, 'tokens_used', m.tokens_used, 'sequence_number', m.sequence_number,
    'revision_number', m.revision_number, 'revision_type', m.revision_type,
    'original_message_id', m.original_message_id, 'parent_message_id', m.parent_message_id,
    'is_latest', m.is_latest, 'status', m.status, 'created_at', m.created_at, 'sources', m.sources)
$$;

create or replace function oneai_private.chat_conversation_json(c public.conversations)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', c.id, 'title', c.title, 'created_at', c.created_at, 'updated_at', c.updated_at,
    'last_message_at', c.last_message_at, 'metadata', c.metadata, 'workspace_id', c.workspace_id,
    'chatbot_id', c.chatbot_id)
$$;

create or replace function oneai_private.chat_insert_message_at(
  p_conversation_id uuid, p_parent public.chat_messages, p_message jsonb
)
returns public.chat_messages
language plpgsql
set search_path = ''
as $$
declare
  v_sequence integer := coalesce(p_parent.sequence_number + 1, 1);
  v_revision integer;
  v_original uuid;
  v_row public.chat_messages;
begin
  update public.chat_messages set is_latest = false
   where conversation_id = p_conversation_id and is_latest and sequence_number >= v_sequence;
  select coalesce(max(revision_number) + 1, 0), (array_agg(id order by revision_number))[1]
    into v_revision, v_original
    from public.chat_messages
   where conversation_id = p_conversation_id and sequence_number = v_sequence;
  insert into public.chat_messages (
    id, conversation_id, user_id, role, content, model_id, tokens_used, sequence_number, parent_message_id,
    original_message_id, revision_number, revision_type, status, metadata, sources)
  values (
    coalesce((p_message->>'id')::uuid, gen_random_uuid()), p_conversation_id, auth.uid(), p_message->>'role',
    p_message->>'content', p_message->>'model_id', (p_message->>'tokens_used')::integer, v_sequence,
    p_parent.id, v_original, v_revision,
    case when v_revision > 0 then
      case when p_message->>'role' = 'user' then 'user_edit' else 'regeneration' end
    end,
    coalesce(p_message->>'status', 'complete'), coalesce(p_message->'metadata', '{}'::jsonb),
    case when jsonb_typeof(p_message->'sources') = 'array' then p_message->'sources' end)
  returning * into v_row;
  update public.conversations set last_message_at = now() where id = p_conversation_id;
  return v_row;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The prepare: the plain turn as before; the chatbot turn with its chatbot, model and admission
-- ---------------------------------------------------------------------------------------------
-- New input keys: `chatbot_id` (the body's, or null) and `workspace_message_limits` (each tier's
-- `widget_messages_per_day`). New output keys: `chatbot` (its configuration, on a chatbot turn, else
-- null) and `admission` (the workspace unit taken, on a chatbot turn; `reserve` is then null).
-- New refusals: chatbot_not_found, chatbot_disabled, workspace_suspended, chatbot_mismatch, plan_limit.
create or replace function oneai_private.chat_prepare_steps(p_turn jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_caller uuid := auth.uid();
  v_tier text;
  v_preferred text;
  v_model text := p_turn->>'model';
  v_offered jsonb;
  v_conversation public.conversations;
  v_conversation_id uuid := (p_turn->>'conversation_id')::uuid;
  v_client_id text := p_turn->>'client_chat_id';
  v_create_missing boolean := coalesce((p_turn->>'create_missing')::boolean, false);
  v_action text := p_turn->>'action';
  v_message_id uuid := (p_turn->>'message_id')::uuid;
  v_chatbot_id uuid := (p_turn->>'chatbot_id')::uuid;
  v_chatbot public.chatbots;
  v_workspace public.workspaces;
  v_existing public.conversations;
  v_reserve record;
  v_reserve_json jsonb;
  v_admission jsonb;
  v_warnings smallint[] := '{}';
  v_target public.chat_messages;
  v_tip public.chat_messages;
  v_parent public.chat_messages;
  v_replaces public.chat_messages;
  v_user_message public.chat_messages;
  v_history jsonb;
begin
  select u.subscription_tier, u.preferences->>'default_model' into v_tier, v_preferred
    from public.users u where u.id = v_caller;
  if not found then
    perform oneai_private.chat_turn_refuse('unknown_user');
  end if;

  -- Whose turn is it: the conversation's chatbot answers in it; a body naming another chatbot, or a
  -- chatbot on a plain conversation, is refused.
  if v_client_id is not null then
    select * into v_existing from public.conversations c
     where c.user_id = v_caller and c.client_id = v_client_id;
  elsif v_conversation_id is not null then
    select * into v_existing from public.conversations c where c.id = v_conversation_id;
  end if;
  if v_existing.id is not null then
    if v_chatbot_id is not null and v_chatbot_id is distinct from v_existing.chatbot_id then
      perform oneai_private.chat_turn_refuse('chatbot_mismatch');
    end if;
    v_chatbot_id := v_existing.chatbot_id;
  end if;

  if v_chatbot_id is not null then
    -- Under the caller's RLS: a chatbot of a workspace they are not a member of is not found.
    select * into v_chatbot from public.chatbots b where b.id = v_chatbot_id and b.deleted_at is null;
    if not found then
      perform oneai_private.chat_turn_refuse('chatbot_not_found');
    end if;
    select * into v_workspace from public.workspaces w where w.id = v_chatbot.workspace_id;
    if not found or v_workspace.deleted_at is not null then
      perform oneai_private.chat_turn_refuse('chatbot_not_found');
    end if;
    if v_workspace.suspended_at is not null then
      perform oneai_private.chat_turn_refuse('workspace_suspended');
    end if;
    if v_chatbot.status = 'disabled' then
      perform oneai_private.chat_turn_refuse('chatbot_disabled');
    end if;
    -- The chatbot's model (validated against the workspace's plan when the chatbot was saved); the
    -- member's own tier does not apply to it.
    v_model := v_chatbot.model;
    v_offered := coalesce(p_turn->'offered'->v_model, jsonb_build_object('quota_key', 'small_messages'));
  else
    -- The model: the named one, else the caller's preferred one while the tier may use it, else the tier's
    -- default (oneai/chat/offered_models.py passes the offered models and the defaults in).
    if v_model is null then
      v_offered := p_turn->'offered'->v_preferred;
      if v_preferred is not null and v_offered is not null and v_offered->'tiers' ? v_tier then
        v_model := v_preferred;
      else
        v_model := coalesce(p_turn->'tier_defaults'->>v_tier, p_turn->'tier_defaults'->>'free');
      end if;
      if coalesce(p_turn->'too_long_for' ? v_model, false) then
        perform oneai_private.chat_turn_refuse('too_long', jsonb_build_object('model', v_model));
      end if;
    end if;
    v_offered := p_turn->'offered'->v_model;
    if v_offered is null or not (v_offered->'tiers' ? v_tier) then
      perform oneai_private.chat_turn_refuse('model', jsonb_build_object('model', v_model, 'tier', v_tier));
    end if;
  end if;

  -- The conversation: by the client's chat id, new, or by id (created under it when asked and free).
  -- A new one is filed under the chatbot's workspace on a chatbot turn.
  if v_client_id is not null then
    if v_create_missing and v_existing.id is null then
      insert into public.conversations (user_id, client_id, title, metadata, workspace_id, chatbot_id)
      values (v_caller, v_client_id, null, '{}'::jsonb, v_chatbot.workspace_id, v_chatbot.id)
      on conflict (user_id, client_id) do nothing
      returning * into v_conversation;
    end if;
    if v_conversation.id is null then
      select * into v_conversation from public.conversations c
       where c.user_id = v_caller and c.client_id = v_client_id;
      if not found then
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end if;
      if v_conversation.chatbot_id is distinct from v_chatbot.id then  -- created meanwhile, by another turn
        perform oneai_private.chat_turn_refuse('chatbot_mismatch');
      end if;
    end if;
  elsif v_conversation_id is null then
    insert into public.conversations (user_id, title, metadata, workspace_id, chatbot_id)
    values (v_caller, null, '{}'::jsonb, v_chatbot.workspace_id, v_chatbot.id)
    returning * into v_conversation;
  else
    v_conversation := v_existing;
    if v_conversation.id is null then
      if not v_create_missing then
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end if;
      begin
        insert into public.conversations (id, user_id, title, metadata, workspace_id, chatbot_id)
        values (v_conversation_id, v_caller, null, '{}'::jsonb, v_chatbot.workspace_id, v_chatbot.id)
        returning * into v_conversation;
      exception when unique_violation then
        -- Taken by someone else (RLS hid it from us): simply not found.
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end;
    end if;
  end if;

  if v_chatbot.id is not null then
    -- One message of the workspace's day: the workspace pays, not the member's quota.
    v_admission := oneai_private.admit_workspace_message(v_chatbot.workspace_id, p_turn->'workspace_message_limits');
    if not (v_admission->>'admitted')::boolean then
      perform oneai_private.chat_turn_refuse('plan_limit', jsonb_build_object('admission', v_admission));
    end if;
  else
    -- One unit of the model's quota.
    select * into v_reserve from oneai_private.reserve_quota(v_offered->>'quota_key', 1);
    if not found then
      raise exception 'reserve_quota returned no row: the caller has no users row';
    end if;
    if not v_reserve.admitted then
      perform oneai_private.chat_turn_refuse('quota', jsonb_build_object('reserve', to_jsonb(v_reserve)));
    end if;
    v_reserve_json := to_jsonb(v_reserve);
    if v_reserve.used_count * 100 >= v_reserve.quota_limit * (p_turn->>'warning_percent')::integer then
      v_warnings := oneai_private.claim_quota_warnings(v_offered->>'quota_key');
    end if;
  end if;

  if v_action = 'regenerate' then
    if v_message_id is not null then
      select * into v_target from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.id = v_message_id;
      if not found then
        perform oneai_private.chat_turn_refuse('message_not_found');
      end if;
    else
      select * into v_target from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.is_latest order by m.sequence_number desc limit 1;
      if not found then
        perform oneai_private.chat_turn_refuse('nothing_to_regenerate');
      end if;
    end if;
    if not v_target.is_latest then
      perform oneai_private.chat_turn_refuse('regenerate_not_latest');
    end if;
    if v_target.role = 'user' then
      select * into v_tip from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.is_latest order by m.sequence_number desc limit 1;
      if v_tip.id is null or v_tip.id <> v_target.id then
        perform oneai_private.chat_turn_refuse('regenerate_answered');
      end if;
      v_parent := v_target;
    else
      v_replaces := v_target;
      if v_target.parent_message_id is not null then
        select * into v_parent from public.chat_messages m
         where m.conversation_id = v_conversation.id and m.id = v_target.parent_message_id;
      end if;
      if v_parent.id is null then
        perform oneai_private.chat_turn_refuse('regenerate_no_prompt');
      end if;
    end if;
  else
    -- Writes lock the conversation first, as the message services do.
    perform 1 from public.conversations c where c.id = v_conversation.id for update;
    if not found then
      perform oneai_private.chat_turn_refuse('conversation_not_found');
    end if;
    if v_action = 'edit' then
      select * into v_target from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.id = v_message_id;
      if not found then
        perform oneai_private.chat_turn_refuse('message_not_found');
      end if;
      if v_target.role <> 'user' then
        perform oneai_private.chat_turn_refuse('revise_role', jsonb_build_object('role', 'user'));
      end if;
      if not v_target.is_latest then
        perform oneai_private.chat_turn_refuse('revise_not_latest');
      end if;
      if v_target.parent_message_id is not null then
        select * into v_parent from public.chat_messages m
         where m.conversation_id = v_conversation.id and m.id = v_target.parent_message_id;
      end if;
    else
      select * into v_parent from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.is_latest order by m.sequence_number desc limit 1;
    end if;
    v_user_message := oneai_private.chat_insert_message_at(
      v_conversation.id,
      case when v_parent.id is null then null else v_parent end,
      jsonb_build_object('role', 'user', 'content', p_turn->>'content', 'model_id', v_model));
    v_parent := v_user_message;
  end if;

  -- The history the model sees: the newest of the current branch up to the message answered.
  select coalesce(jsonb_agg(oneai_private.chat_message_json(h) order by h.sequence_number), '[]'::jsonb)
    into v_history
    from (
      select * from public.chat_messages m
       where m.conversation_id = v_conversation.id and m.is_latest and m.sequence_number <= v_parent.sequence_number
       order by m.sequence_number desc
       limit (p_turn->>'history_limit')::integer
    ) h;

  return jsonb_build_object(
    'model', v_model,
    'tier', v_tier,
    'quota_key', v_offered->>'quota_key',
    'conversation', oneai_private.chat_conversation_json(v_conversation),
    'reserve', v_reserve_json,
    'admission', v_admission,
    'chatbot', case when v_chatbot.id is null then null else jsonb_build_object(
      'id', v_chatbot.id, 'workspace_id', v_chatbot.workspace_id, 'name', v_chatbot.name,
      'model', v_chatbot.model, 'temperature', v_chatbot.temperature, 'max_tokens', v_chatbot.max_tokens,
      'system_prompt', v_chatbot.system_prompt, 'top_k', v_chatbot.retrieval_top_k,
      'min_score', v_chatbot.retrieval_min_score, 'fallback_mode', v_chatbot.fallback_mode,
      'fallback_message', v_chatbot.fallback_message) end,
    'warnings', to_jsonb(v_warnings),
    'parent', oneai_private.chat_message_json(v_parent),
    'replaces', case when v_replaces.id is null then null else oneai_private.chat_message_json(v_replaces) end,
    'user_message',
      case when v_user_message.id is null then null else oneai_private.chat_message_json(v_user_message) end,
    'history', v_history);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The finish: a chatbot reply's usage is the workspace's (and a fixed fallback message costs nothing)
-- ---------------------------------------------------------------------------------------------
-- New input keys: `workspace_usage` (true on a chatbot turn: the usage record names the conversation's
-- workspace and chatbot) and `record_usage` (false: no usage record, for the fixed fallback message);
-- `message.sources` is saved with the reply.
create or replace function oneai_private.chat_finish_steps(p_reply jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_conversation_id uuid := (p_reply->>'conversation_id')::uuid;
  v_replaces_id uuid := (p_reply->>'replaces_id')::uuid;
  v_parent_id uuid := (p_reply->>'parent_id')::uuid;
  v_target public.chat_messages;
  v_parent public.chat_messages;
  v_message public.chat_messages;
  v_quotas jsonb;
begin
  perform 1 from public.conversations c where c.id = v_conversation_id for update;
  if not found then
    perform oneai_private.chat_turn_refuse('conversation_not_found');
  end if;
  if v_replaces_id is not null then
    select * into v_target from public.chat_messages m
     where m.conversation_id = v_conversation_id and m.id = v_replaces_id;
    if not found then
      perform oneai_private.chat_turn_refuse('message_not_found');
    end if;
    if v_target.role <> 'assistant' then
      perform oneai_private.chat_turn_refuse('revise_role', jsonb_build_object('role', 'assistant'));
    end if;
    if not v_target.is_latest then
      perform oneai_private.chat_turn_refuse('revise_not_latest');
    end if;
    if v_target.parent_message_id is not null then
      select * into v_parent from public.chat_messages m
       where m.conversation_id = v_conversation_id and m.id = v_target.parent_message_id;
    end if;
  else
    select * into v_parent from public.chat_messages m
     where m.conversation_id = v_conversation_id and m.id = v_parent_id;
    if not found then
      perform oneai_private.chat_turn_refuse('message_not_found');
    end if;
    if not v_parent.is_latest then
      perform oneai_private.chat_turn_refuse('reply_conflict');
    end if;
  end if;
  v_message := oneai_private.chat_insert_message_at(
    v_conversation_id, case when v_parent.id is null then null else v_parent end, p_reply->'message');
  if not coalesce((p_reply->>'record_usage')::boolean, true) then
    null;  -- the chatbot's fixed message: nothing was asked of a model
  elsif coalesce((p_reply->>'workspace_usage')::boolean, false) then
    perform oneai_private.record_workspace_usage(
      v_conversation_id, v_message.id, p_reply->>'quota_key', p_reply->>'requested_model',
      p_reply->'message'->>'model_id', p_reply->>'generation_id', (p_reply->>'prompt_tokens')::integer,
      (p_reply->>'completion_tokens')::integer, (p_reply->>'cost')::numeric, p_reply->'message'->>'status');
  else
    perform oneai_private.record_usage(
      v_conversation_id, v_message.id, p_reply->>'quota_key', p_reply->>'requested_model',
      p_reply->'message'->>'model_id', p_reply->>'generation_id', (p_reply->>'prompt_tokens')::integer,
      (p_reply->>'completion_tokens')::integer, (p_reply->>'cost')::numeric, p_reply->'message'->>'status');
  end if;
  select coalesce(jsonb_agg(to_jsonb(q) order by q.quota_key), '[]'::jsonb) into v_quotas
    from oneai_private.current_quotas() q;
  return jsonb_build_object('message', oneai_private.chat_message_json(v_message), 'quotas', v_quotas);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The knowledge search, narrowed to a chatbot's ready documents inside the statement
-- ---------------------------------------------------------------------------------------------
-- The full-text half of oneai/db/knowledge.py's search, as workspace_text_matches (20261124000000) with
-- one more filter: `p_chatbot_id` not null keeps the chunks of that chatbot's `ready` documents (read from
-- chatbot_documents here, in the statement, never a list the application fetched first).
create function oneai_private.workspace_text_matches(
  p_workspace_id uuid, p_query text, p_document_ids uuid[], p_limit integer, p_chatbot_id uuid
) returns table (id uuid, text_rank real)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if p_workspace_id not in (select oneai_private.workspaces_with_role('viewer')) then
    return;
  end if;
  return query execute
    'select c.id, ts_rank_cd(c.tsv, q.query)
     from websearch_to_tsquery(''english''::regconfig, $2) q (query)
     join public.document_chunks c on c.tsv @@ q.query
     where c.workspace_id = $1 and ($3 is null or c.document_id = any ($3))
       and ($5 is null or c.document_id in (
         select cd.document_id from public.chatbot_documents cd
         join public.documents d on d.id = cd.document_id and d.workspace_id = cd.workspace_id
         where cd.chatbot_id = $5 and cd.workspace_id = $1 and d.status = ''ready''))
     limit $4'
    using p_workspace_id, p_query, p_document_ids, p_limit, p_chatbot_id;
end
$$;

revoke execute on function oneai_private.workspace_text_matches(uuid, text, uuid[], integer, uuid) from public;
grant execute on function oneai_private.workspace_text_matches(uuid, text, uuid[], integer, uuid)
  to authenticated, service_role;
