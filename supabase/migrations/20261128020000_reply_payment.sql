-- Who pays for a chatbot's reply (issue 26 items 3 and 5; API.md "Provider keys (bring your own)",
-- "Credits"): the workspace's own provider key for the model, else the platform's OpenRouter account paid
-- from the workspace's credits.
--
-- The payer is decided inside the chat turn's one-round-trip prepare (chat_prepare_steps, redefined here
-- from 20261125010000_chatbot_turns.sql), after the workspace's message unit and the user message and the
-- history, in the same transaction:
--   * a key: `oneai_private.reply_key_for` names the workspace's active key that may serve the model and
--     whose `monthly_limit` (INR, estimated spend this UTC month) still has room; no credits are reserved.
--     The application opens that key (its sealed bytes are the service's) after the prepare committed.
--   * no key: the reply's estimated maximum cost is reserved from the credits (`reserve_credits`, the one
--     conditional UPDATE of 20261126000000_credits.sql). A refusal raises the turn's refusal
--     `insufficient_credits`, which rolls the WHOLE prepare back: no message unit, no user message, no
--     conversation are left behind.
-- The estimate: the prompt's tokens (the chatbot's prompt and the history read here, at 4 characters a
-- token and 4 tokens a message, plus `passage_tokens` for each of the chatbot's `top_k` passages, which
-- retrieval adds after the prepare) at the model's prompt price, plus the chatbot's `max_tokens` at its
-- completion price (USD per token, passed in by the application from the catalog it holds), x rate x
-- markup, rounded up to the paisa, never under `min_reserve`.
--
-- The finish (chat_finish_steps, redefined) records the usage with the key that served it
-- (`usage_records.provider_key_id`) and settles a credits reservation with the real cost in the same
-- transaction (`settle_credits`, linked to the usage record); it answers the settlement, whose
-- `low_balance` the application announces after the commit.

-- ---------------------------------------------------------------------------------------------
-- The key that may serve a workspace's reply of `p_model`
-- ---------------------------------------------------------------------------------------------
-- The rule of oneai.provider_keys.service.key_for: the model's own provider first (`openai` for
-- `openai/...`, `anthropic`, `google`), then an `openrouter` key (any model); `custom/<name>` only by the
-- custom key named `<name>`. Among keys of one provider the oldest first. A key whose monthly_limit has no
-- room (this month's USD cost of the usage it served x `p_rate`, to the paisa, >= the limit) is skipped;
-- an invalid key is never answered. Null: no key serves (credits pay). Security definer (members cannot
-- read keys; a viewer may chat): checks the caller's membership itself; answers the id only.
create function oneai_private.reply_key_for(p_workspace_id uuid, p_model text, p_rate numeric)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_prefix text := split_part(p_model, '/', 1);
  v_rest text := substr(p_model, char_length(split_part(p_model, '/', 1)) + 2);
  v_providers text[];
  v_key uuid;
begin
  if not (coalesce((select auth.role()) = 'service_role', false)
          or oneai_private.has_workspace_role(p_workspace_id, 'viewer')) then
    return null;
  end if;
  if v_prefix = 'custom' then
    if coalesce(v_rest, '') = '' then
      return null;
    end if;
    v_providers := array['custom'];
  elsif v_prefix in ('openai', 'anthropic', 'google') and coalesce(v_rest, '') <> '' then
    v_providers := array[v_prefix, 'openrouter'];
  else
    v_providers := array['openrouter'];
  end if;
  select k.id into v_key
    from public.provider_keys k
   where k.workspace_id = p_workspace_id and k.status = 'active' and k.provider = any (v_providers)
     and (k.provider <> 'custom' or k.name = v_rest)
     and (k.monthly_limit is null or round(coalesce((
           select sum(greatest(u.cost, 0)) from public.usage_records u
            where u.provider_key_id = k.id
              and u.created_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'
         ), 0) * p_rate, 2) < k.monthly_limit)
   order by array_position(v_providers, k.provider), k.created_at, k.id
   limit 1;
  return v_key;
end
$$;

-- A reply's estimated maximum cost in INR (see the header), from `p_credits` = {"prices": {model:
-- [prompt_usd_per_token, completion_usd_per_token]}, "rate", "markup", "min_reserve", "passage_tokens"}.
create function oneai_private.reply_cost_estimate(
  p_credits jsonb, p_model text, p_prompt_chars bigint, p_messages integer, p_top_k integer, p_max_tokens integer
)
returns numeric
language sql
immutable
set search_path = ''
as $$
  select greatest(
    (p_credits->>'min_reserve')::numeric,
    ceil((
      greatest(coalesce((p_credits->'prices'->p_model->>0)::numeric, 0), 0)
        * (ceil(p_prompt_chars / 4.0) + 4 * p_messages
           + greatest(p_top_k, 0) * coalesce((p_credits->>'passage_tokens')::integer, 0))
      + greatest(coalesce((p_credits->'prices'->p_model->>1)::numeric, 0), 0) * greatest(p_max_tokens, 0)
    ) * (p_credits->>'rate')::numeric * (p_credits->>'markup')::numeric * 100) / 100)
$$;

-- A chatbot reply's usage record with the key that served it (null: the platform's account). As
-- record_workspace_usage (20261125010000), and the key must be of the conversation's workspace.
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
  p_status text,
  p_provider_key_id uuid
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_recorded uuid;
begin
  v_recorded := oneai_private.record_workspace_usage(
    p_conversation_id, p_message_id, p_quota_key, p_requested_model, p_model_id, p_generation_id,
    p_prompt_tokens, p_completion_tokens, p_cost, p_status);
  if p_provider_key_id is not null then
    update public.usage_records u set provider_key_id = k.id
      from public.provider_keys k
     where u.id = v_recorded and k.id = p_provider_key_id and k.workspace_id = u.workspace_id;
  end if;
  return v_recorded;
end
$$;

revoke execute on function oneai_private.reply_key_for(uuid, text, numeric) from public, anon;
revoke execute on function oneai_private.reply_cost_estimate(jsonb, text, bigint, integer, integer, integer)
  from public, anon;
revoke execute on function oneai_private.record_workspace_usage(
  uuid, uuid, text, text, text, text, integer, integer, numeric, text, uuid) from public, anon;
grant execute on function oneai_private.reply_key_for(uuid, text, numeric) to authenticated, service_role;
grant execute on function oneai_private.reply_cost_estimate(jsonb, text, bigint, integer, integer, integer)
  to authenticated, service_role;
grant execute on function oneai_private.record_workspace_usage(
  uuid, uuid, text, text, text, text, integer, integer, numeric, text, uuid) to authenticated;

-- Who pays for a chatbot's reply, a member's turn and a widget visitor's alike: the workspace's key for
-- the model, else its credits, the reply's estimated maximum cost held now from `p_history` (the messages
-- the model gets, jsonb array of {"content"}) and the chatbot's prompt and settings. Answers
-- {"provider_key_id", "credits": the hold ({"reservation_id", "amount", "balance", "available"}) or null};
-- `p_credits` null: nothing decided (both null). Refusals (chat_turn_refuse, OAI01, rolling back the
-- caller's whole call): insufficient_credits ({"balance", "needed"}), chatbot_not_found.
create function oneai_private.chatbot_reply_payer(
  p_chatbot public.chatbots, p_model text, p_credits jsonb, p_history jsonb
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_key_id uuid;
  v_prompt_chars bigint;
  v_messages integer;
  v_amount numeric;
  v_hold jsonb;
begin
  if p_credits is null or jsonb_typeof(p_credits) <> 'object' then
    return jsonb_build_object('provider_key_id', null, 'credits', null);
  end if;
  v_key_id := oneai_private.reply_key_for(p_chatbot.workspace_id, p_model, (p_credits->>'rate')::numeric);
  if v_key_id is null then
    select coalesce(sum(char_length(h->>'content')), 0), count(*)::integer
      into v_prompt_chars, v_messages
      from jsonb_array_elements(coalesce(p_history, '[]'::jsonb)) h;
    v_amount := oneai_private.reply_cost_estimate(
      p_credits, p_model, v_prompt_chars + char_length(coalesce(p_chatbot.system_prompt, '')), v_messages + 2,
      p_chatbot.retrieval_top_k, p_chatbot.max_tokens);
    v_hold := oneai_private.reserve_credits(p_chatbot.workspace_id, v_amount);
    if v_hold->>'refused' = 'insufficient_credits' then
      perform oneai_private.chat_turn_refuse('insufficient_credits', jsonb_build_object(
        'balance', v_hold->'available', 'needed', v_amount));
    elsif v_hold ? 'refused' then
      perform oneai_private.chat_turn_refuse('chatbot_not_found');
    end if;
    v_hold := v_hold || jsonb_build_object('amount', v_amount);
  end if;
  return jsonb_build_object('provider_key_id', v_key_id, 'credits', v_hold);
end
$$;

revoke execute on function oneai_private.chatbot_reply_payer(public.chatbots, text, jsonb, jsonb) from public, anon;
grant execute on function oneai_private.chatbot_reply_payer(public.chatbots, text, jsonb, jsonb)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The prepare: as 20261125010000, and a chatbot turn's payer decided (a key, or a credits reservation)
-- ---------------------------------------------------------------------------------------------
-- New input key: `credits` (see reply_cost_estimate; null: the payer is not decided, as before). New
-- output keys: `provider_key_id` (the key that serves the reply) and `credits` ({"reservation_id",
-- "amount", "balance", "available"}: the hold of a reply paid from credits). New refusal:
-- insufficient_credits ({"balance", "needed"}), which rolls back everything the call did.
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
  v_credits jsonb := p_turn->'credits';
  v_key_id uuid;
  v_payer jsonb;
  v_hold jsonb;
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

  -- Who pays for a chatbot's reply: the workspace's key for the model, else its credits, reserved here
  -- (a refusal rolls back the whole call: no unit taken, no message written).
  if v_chatbot.id is not null then
    v_payer := oneai_private.chatbot_reply_payer(v_chatbot, v_model, v_credits, v_history);
    v_key_id := (v_payer->>'provider_key_id')::uuid;
    v_hold := nullif(v_payer->'credits', 'null'::jsonb);
  end if;

  return jsonb_build_object(
    'provider_key_id', v_key_id,
    'credits', v_hold,
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
-- The finish: as 20261125010000, with the key that served the reply and the credits settled
-- ---------------------------------------------------------------------------------------------
-- New input keys: `provider_key_id` (the key that served, or null) and `credits` ({"reservation_id",
-- "rate", "markup"}: the hold to settle with `cost`). New output key: `settlement` (settle_credits' answer, or null).
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
  v_usage uuid;
  v_credits jsonb := p_reply->'credits';
  v_settlement jsonb;
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
    v_usage := oneai_private.record_workspace_usage(
      v_conversation_id, v_message.id, p_reply->>'quota_key', p_reply->>'requested_model',
      p_reply->'message'->>'model_id', p_reply->>'generation_id', (p_reply->>'prompt_tokens')::integer,
      (p_reply->>'completion_tokens')::integer, (p_reply->>'cost')::numeric, p_reply->'message'->>'status',
      (p_reply->>'provider_key_id')::uuid);
  else
    perform oneai_private.record_usage(
      v_conversation_id, v_message.id, p_reply->>'quota_key', p_reply->>'requested_model',
      p_reply->'message'->>'model_id', p_reply->>'generation_id', (p_reply->>'prompt_tokens')::integer,
      (p_reply->>'completion_tokens')::integer, (p_reply->>'cost')::numeric, p_reply->'message'->>'status');
  end if;
  -- A reply paid from credits: its real cost taken and its hold released, with the usage record.
  if v_credits is not null and jsonb_typeof(v_credits) = 'object' then
    v_settlement := oneai_private.settle_credits(
      (v_credits->>'reservation_id')::uuid, greatest(coalesce((p_reply->>'cost')::numeric, 0), 0),
      (v_credits->>'rate')::numeric, (v_credits->>'markup')::numeric, v_usage);
  end if;
  select coalesce(jsonb_agg(to_jsonb(q) order by q.quota_key), '[]'::jsonb) into v_quotas
    from oneai_private.current_quotas() q;
  return jsonb_build_object('message', oneai_private.chat_message_json(v_message), 'quotas', v_quotas,
    'settlement', v_settlement);
end
$$;

