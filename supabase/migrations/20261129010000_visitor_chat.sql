-- The widget's public chat (issue 27 part 2, API.md "The embeddable widget"): a visitor's turn, prepared,
-- finished and refunded by the service, each in ONE call.
--
-- A visitor has no user row: nothing here runs under a user's RLS. The public route first checks, in an
-- anonymous transaction (oneai.widget.service), the source's and the visitor's rate buckets, the chatbot,
-- the request's Origin and the signed session token; only then does it call these functions as the
-- service (`service_role`, on purpose: the payer's key and the credits hold are the service's business),
-- naming the chatbot and the visitor the token names. Each function acts on that visitor's rows of that
-- chatbot alone.
--
-- The turn's steps are the chat turn's (oneai/chat/entry.py, kind `VisitorTurn`); the SQL of the member's
-- chatbot turn (20261128020000_reply_payment.sql) is reused where it is not a user's: who pays
-- (`chatbot_reply_payer`: `reply_key_for`, `reply_cost_estimate`, `reserve_credits`), `settle_credits`,
-- `refund_credits` and the refusal (`chat_turn_refuse`) all accept the service.

-- ---------------------------------------------------------------------------------------------
-- A chatbot's visitor messages of a day (UTC), under the owner's tier's `widget_messages_per_day`
-- ---------------------------------------------------------------------------------------------
-- Per chatbot (API.md: "per chatbot per day"): one public chatbot flooded cannot starve the workspace's
-- other chatbots, nor the members' in-app chatbot turns (their own counter, workspace_message_counts).
create table public.widget_message_counts (
  chatbot_id uuid not null references public.chatbots (id) on delete cascade,
  day date not null,
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  used integer not null default 0 check (used >= 0),
  primary key (chatbot_id, day)
);

create index idx_widget_message_counts_workspace on public.widget_message_counts (workspace_id, day);

alter table public.widget_message_counts enable row level security;
revoke all on public.widget_message_counts from anon, authenticated;
grant select on public.widget_message_counts to authenticated;
create policy widget_message_counts_members_read on public.widget_message_counts for select
  to authenticated using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
grant all on public.widget_message_counts to service_role;

-- The AI SDK's own chat id of a visitor's conversation (`useChat` names a new chat before the server has
-- seen it, as a member's /chat/stream turn: conversations.client_id): one conversation per visitor and id.
alter table public.visitor_conversations
  add column client_id text check (client_id is null or char_length(client_id) between 1 and 128);
create unique index visitor_conversations_client_id on public.visitor_conversations (visitor_ref, client_id)
  where client_id is not null;

-- A refusal of the visitor's turn is the chat turn's (chat_turn_refuse, 20261122110000): the whole call
-- rolls back (nothing of it stays), and the application reads the code and its details from the error's
-- DETAIL (SQLSTATE OAI01); the service may raise it (granted below).

create function oneai_private.visitor_message_json(m public.visitor_messages)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', m.id, 'conversation_id', m.conversation_id, 'role', m.role, 'content', m.content,
    'model_id', m.model_id, 'tokens_used', m.tokens_used, 'sequence_number', m.sequence_number,
    'status', m.status, 'sources', m.sources, 'created_at', m.created_at,
    'ttft_ms', m.ttft_ms, 'total_ms', m.total_ms)
$$;

-- ---------------------------------------------------------------------------------------------
-- The prepare: the chatbot answers now, the conversation is the visitor's (or new), one unit of the
-- chatbot's day, the visitor's message, the history, and who pays
-- ---------------------------------------------------------------------------------------------
-- `p_turn`: {"chatbot_id", "visitor_id", "conversation_id"?, "client_id"?, "create_missing"?, "content",
-- "limits": {tier: n},
-- "history_limit", "credits": the terms of oneai.chatbots.payment.credits_terms}. The conversation: by
-- `conversation_id` (with `create_missing`, the AI SDK naming a new chat by a UUID: created under that id
-- when it is free), by the visitor's `client_id` (created on its first message), or new. Answers {"chatbot",
-- "conversation", "user_message", "history", "admission": {"day","used","limit","tier"},
-- "provider_key_id", "credits"}. Refusals (OAI01, everything rolled back): chatbot_not_found,
-- chatbot_unavailable (disabled, draft, or the workspace suspended), visitor_not_found,
-- conversation_not_found (not this visitor's conversation of this chatbot), daily_limit ({"used","limit",
-- "tier","retry_after"}: seconds to the next UTC day), insufficient_credits ({"balance","needed"}).
--
-- The unit: one statement takes it with the limit in its WHERE (as admit_workspace_message): a concurrent
-- admission waits for the row lock and re-checks the limit on the row it then sees, so N parallel turns
-- under a limit L admit exactly L. The conversation row is locked before its next sequence number is
-- read, so two turns of one conversation write their messages one after the other.
create function oneai_private.visitor_prepare_turn(p_turn jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_chatbot public.chatbots;
  v_workspace public.workspaces;
  v_visitor public.widget_visitors;
  v_conversation public.visitor_conversations;
  v_conversation_id uuid := (p_turn->>'conversation_id')::uuid;
  v_client_id text := p_turn->>'client_id';
  v_create_missing boolean := coalesce((p_turn->>'create_missing')::boolean, false);
  v_tier text;
  v_limit integer;
  v_day date := (now() at time zone 'utc')::date;
  v_used integer;
  v_sequence integer;
  v_user_message public.visitor_messages;
  v_history jsonb;
  v_credits jsonb := p_turn->'credits';
  v_payer jsonb;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'visitor_prepare_turn is the service''s' using errcode = '42501';
  end if;
  select * into v_chatbot from public.chatbots b
   where b.id = (p_turn->>'chatbot_id')::uuid and b.deleted_at is null;
  if not found then
    perform oneai_private.chat_turn_refuse('chatbot_not_found');
  end if;
  select * into v_workspace from public.workspaces w where w.id = v_chatbot.workspace_id;
  if not found or v_workspace.deleted_at is not null then
    perform oneai_private.chat_turn_refuse('chatbot_not_found');
  end if;
  if v_chatbot.status <> 'active' or v_workspace.suspended_at is not null then
    perform oneai_private.chat_turn_refuse('chatbot_unavailable');
  end if;
  select * into v_visitor from public.widget_visitors v
   where v.chatbot_id = v_chatbot.id and v.visitor_id = p_turn->>'visitor_id';
  if not found then
    perform oneai_private.chat_turn_refuse('visitor_not_found');
  end if;
  if v_client_id is not null then
    select * into v_conversation from public.visitor_conversations c
     where c.visitor_ref = v_visitor.id and c.client_id = v_client_id and c.chatbot_id = v_chatbot.id
     for update;
  elsif v_conversation_id is not null then
    select * into v_conversation from public.visitor_conversations c
     where c.id = v_conversation_id and c.chatbot_id = v_chatbot.id and c.visitor_ref = v_visitor.id
     for update;
    if not found and (not v_create_missing
                      or exists (select 1 from public.visitor_conversations c where c.id = v_conversation_id)) then
      perform oneai_private.chat_turn_refuse('conversation_not_found');
    end if;
  end if;

  -- One message of the chatbot's day, under the owner's tier's limit.
  select u.subscription_tier into v_tier from public.users u where u.id = v_workspace.owner_id;
  v_limit := coalesce((p_turn->'limits'->>v_tier)::integer, (p_turn->'limits'->>'free')::integer, 0);
  if v_limit >= 1 then
    insert into public.widget_message_counts as c (chatbot_id, day, workspace_id, used)
    values (v_chatbot.id, v_day, v_chatbot.workspace_id, 1)
    on conflict (chatbot_id, day) do update set used = c.used + 1 where c.used < v_limit
    returning c.used into v_used;
  end if;
  if v_used is null then
    select c.used into v_used from public.widget_message_counts c where c.chatbot_id = v_chatbot.id and c.day = v_day;
    perform oneai_private.chat_turn_refuse('daily_limit', jsonb_build_object(
      'used', coalesce(v_used, 0), 'limit', v_limit, 'tier', v_tier,
      'retry_after', greatest(1, ceil(extract(epoch from
        ((v_day + 1)::timestamp at time zone 'utc') - now())))::integer));
  end if;

  -- The conversation: the visitor's, or a new one as the visitor is now.
  if v_conversation.id is null then
    begin
      insert into public.visitor_conversations
          (id, workspace_id, chatbot_id, visitor_ref, visitor_id, page_url, referrer, user_agent, locale,
           source_hash, client_id)
      values (coalesce(v_conversation_id, gen_random_uuid()), v_chatbot.workspace_id, v_chatbot.id, v_visitor.id,
              v_visitor.visitor_id, v_visitor.page_url, v_visitor.referrer, v_visitor.user_agent, v_visitor.locale,
              v_visitor.source_hash, v_client_id)
      returning * into v_conversation;
    exception when unique_violation then
      -- Made meanwhile by another turn of the visitor under that chat id, or the id is someone else's.
      select * into v_conversation from public.visitor_conversations c
       where c.visitor_ref = v_visitor.id and c.chatbot_id = v_chatbot.id
         and ((v_client_id is not null and c.client_id = v_client_id) or c.id = v_conversation_id)
       for update;
      if not found then
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end if;
    end;
  end if;
  select coalesce(max(m.sequence_number), 0) + 1 into v_sequence
    from public.visitor_messages m where m.conversation_id = v_conversation.id;
  insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number)
  values (v_conversation.id, v_conversation.workspace_id, 'user', p_turn->>'content', v_sequence)
  returning * into v_user_message;
  update public.visitor_conversations c
     set message_count = c.message_count + 1, last_message_at = v_user_message.created_at
   where c.id = v_conversation.id
  returning * into v_conversation;

  -- The history the model sees: the newest messages up to the visitor's.
  select coalesce(jsonb_agg(oneai_private.visitor_message_json(h) order by h.sequence_number), '[]'::jsonb)
    into v_history
    from (
      select * from public.visitor_messages m
       where m.conversation_id = v_conversation.id
       order by m.sequence_number desc
       limit (p_turn->>'history_limit')::integer
    ) h;

  -- Who pays: the workspace's key for the model, else its credits, reserved here (a refusal rolls back the
  -- whole call: no unit taken, no message, no conversation).
  v_payer := oneai_private.chatbot_reply_payer(v_chatbot, v_chatbot.model, v_credits, v_history);

  return jsonb_build_object(
    'chatbot', jsonb_build_object(
      'id', v_chatbot.id, 'workspace_id', v_chatbot.workspace_id, 'name', v_chatbot.name,
      'model', v_chatbot.model, 'temperature', v_chatbot.temperature, 'max_tokens', v_chatbot.max_tokens,
      'system_prompt', v_chatbot.system_prompt, 'top_k', v_chatbot.retrieval_top_k,
      'min_score', v_chatbot.retrieval_min_score, 'fallback_mode', v_chatbot.fallback_mode,
      'fallback_message', v_chatbot.fallback_message),
    'conversation', jsonb_build_object(
      'id', v_conversation.id, 'started_at', v_conversation.started_at,
      'updated_at', v_conversation.updated_at, 'last_message_at', v_conversation.last_message_at),
    'user_message', oneai_private.visitor_message_json(v_user_message),
    'history', v_history,
    'admission', jsonb_build_object('day', v_day, 'used', v_used, 'limit', v_limit, 'tier', v_tier),
    'provider_key_id', v_payer->'provider_key_id',
    'credits', v_payer->'credits');
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The finish: the reply, the conversation's count and time, the usage record, the credits settled
-- ---------------------------------------------------------------------------------------------
-- `p_reply`: {"conversation_id", "chatbot_id", "message": {"id","content","model_id","status",
-- "tokens_used","sources","ttft_ms","total_ms"}, "quota_key", "requested_model", "generation_id",
-- "prompt_tokens", "completion_tokens", "cost", "record_usage", "provider_key_id", "credits":
-- {"reservation_id","rate","markup"}}. Answers {"message", "settlement"}. Refusal: conversation_not_found
-- (deleted from the inbox while the reply was written).
create function oneai_private.visitor_finish_turn(p_reply jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_conversation public.visitor_conversations;
  v_message public.visitor_messages;
  v_sequence integer;
  v_usage uuid;
  v_key uuid;
  v_credits jsonb := p_reply->'credits';
  v_settlement jsonb;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'visitor_finish_turn is the service''s' using errcode = '42501';
  end if;
  select * into v_conversation from public.visitor_conversations c
   where c.id = (p_reply->>'conversation_id')::uuid for update;
  if not found then
    perform oneai_private.chat_turn_refuse('conversation_not_found');
  end if;
  select coalesce(max(m.sequence_number), 0) + 1 into v_sequence
    from public.visitor_messages m where m.conversation_id = v_conversation.id;
  insert into public.visitor_messages (
    id, conversation_id, workspace_id, role, content, sequence_number, status, model_id, tokens_used, sources,
    ttft_ms, total_ms)
  values (
    (p_reply->'message'->>'id')::uuid, v_conversation.id, v_conversation.workspace_id, 'assistant',
    p_reply->'message'->>'content', v_sequence, p_reply->'message'->>'status', p_reply->'message'->>'model_id',
    (p_reply->'message'->>'tokens_used')::integer,
    case when jsonb_typeof(p_reply->'message'->'sources') = 'array' then p_reply->'message'->'sources' end,
    (p_reply->'message'->>'ttft_ms')::integer, (p_reply->'message'->>'total_ms')::integer)
  returning * into v_message;
  update public.visitor_conversations c
     set message_count = c.message_count + 1, last_message_at = v_message.created_at
   where c.id = v_conversation.id;
  if coalesce((p_reply->>'record_usage')::boolean, true) then
    select k.id into v_key from public.provider_keys k
     where k.id = (p_reply->>'provider_key_id')::uuid and k.workspace_id = v_conversation.workspace_id;
    -- The workspace's usage (no user: a visitor's turn); no conversation or message of a user to link.
    insert into public.usage_records (
      user_id, conversation_id, message_id, quota_key, requested_model, model_id, generation_id,
      prompt_tokens, completion_tokens, cost, status, workspace_id, chatbot_id, provider_key_id)
    values (
      null, null, null, coalesce(p_reply->>'quota_key', 'small_messages'), p_reply->>'requested_model',
      p_reply->'message'->>'model_id', p_reply->>'generation_id',
      greatest(coalesce((p_reply->>'prompt_tokens')::integer, 0), 0),
      greatest(coalesce((p_reply->>'completion_tokens')::integer, 0), 0),
      greatest(coalesce((p_reply->>'cost')::numeric, 0), 0), p_reply->'message'->>'status',
      v_conversation.workspace_id, v_conversation.chatbot_id, v_key)
    returning id into v_usage;
  end if;
  if v_credits is not null and jsonb_typeof(v_credits) = 'object' then
    v_settlement := oneai_private.settle_credits(
      (v_credits->>'reservation_id')::uuid, greatest(coalesce((p_reply->>'cost')::numeric, 0), 0),
      (v_credits->>'rate')::numeric, (v_credits->>'markup')::numeric, v_usage);
  end if;
  return jsonb_build_object('message', oneai_private.visitor_message_json(v_message), 'settlement', v_settlement);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The refund: the model failed before its first token (the visitor's message stays, no reply is written)
-- ---------------------------------------------------------------------------------------------
-- The chatbot's unit of `p_day` back (never below zero) when `p_unit`, and the credits hold, if any.
create function oneai_private.visitor_refund_turn(p_chatbot_id uuid, p_day date, p_unit boolean, p_reservation_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_unit boolean := false;
  v_credits boolean := false;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'visitor_refund_turn is the service''s' using errcode = '42501';
  end if;
  if p_unit then
    update public.widget_message_counts c set used = c.used - 1
     where c.chatbot_id = p_chatbot_id and c.day = p_day and c.used > 0;
    v_unit := found;
  end if;
  if p_reservation_id is not null then
    v_credits := oneai_private.refund_credits(p_reservation_id);
  end if;
  return jsonb_build_object('unit', v_unit, 'credits', v_credits);
end
$$;

revoke execute on function oneai_private.visitor_message_json(public.visitor_messages) from public, anon, authenticated;
revoke execute on function oneai_private.visitor_prepare_turn(jsonb) from public, anon, authenticated;
revoke execute on function oneai_private.visitor_finish_turn(jsonb) from public, anon, authenticated;
revoke execute on function oneai_private.visitor_refund_turn(uuid, date, boolean, uuid) from public, anon, authenticated;
grant execute on function oneai_private.chat_turn_refuse(text, jsonb) to service_role;
grant execute on function oneai_private.visitor_message_json(public.visitor_messages) to service_role;
grant execute on function oneai_private.visitor_prepare_turn(jsonb) to service_role;
grant execute on function oneai_private.visitor_finish_turn(jsonb) to service_role;
grant execute on function oneai_private.visitor_refund_turn(uuid, date, boolean, uuid) to service_role;
