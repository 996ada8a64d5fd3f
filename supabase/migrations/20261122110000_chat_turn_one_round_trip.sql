-- Issue 11: a chat turn prepares and finishes in one database round trip each.
--
-- `prepare_chat_turn(turn jsonb)` and `finish_chat_turn(reply jsonb)` do, in one call, what the Python
-- turn did statement by statement (oneai/chat/turn.py explains the rules). They run SECURITY INVOKER:
-- the caller's scope (role `authenticated`, the JWT claims) is set by the same round trip's first
-- statement, so every row they touch is under the same Row Level Security policies as before: another
-- user's conversation or message is simply not found. The quota and usage calls they make are the
-- existing definer functions, which act on auth.uid() only.
--
-- The whole round trip is `begin; <scope>; select <call>; commit` (Database.user_call). The call first
-- does what every user transaction does first (chat_request_checks): the caller's users row (unknown,
-- suspended) and the request's rate check. Those refusals raise SQLSTATE OAI02 out of the call, which
-- stops the batch before its commit: nothing is written. The work then runs in an inner block: a refusal
-- of the turn's rules raises OAI01 with a JSON detail, the block's writes are undone (a subtransaction)
-- and the call answers {"error": {"code": ...}}, committed, so the request's rate token stays taken, as
-- with user_transaction. Python turns each code into the API error it always was (oneai/chat/turn.py).
--
-- Input and output are JSON so that later steps (attachments) extend them without a new signature.

create function oneai_private.chat_message_json(m public.chat_messages)
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
    'is_latest', m.is_latest, 'status', m.status, 'created_at', m.created_at)
$$;

create function oneai_private.chat_conversation_json(c public.conversations)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', c.id, 'title', c.title, 'created_at', c.created_at, 'updated_at', c.updated_at,
    'last_message_at', c.last_message_at, 'metadata', c.metadata)
$$;

-- The first checks of a user's request (oneai/db/connection.py does the same for user_transaction):
-- the users row, then the rate check of `p_rate` ({bucket, per_minute, burst}, null: none).
create function oneai_private.chat_request_checks(p_rate jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_user record;
  v_rate record;
  v_checks jsonb;
begin
  select u.suspended_at, u.welcome_announced_at is null as welcome_due into v_user
    from public.users u where u.id = auth.uid();
  if not found then
    raise exception 'user call refused' using errcode = 'OAI02', detail = '{"code": "unknown_user"}';
  end if;
  if v_user.suspended_at is not null then
    raise exception 'user call refused' using errcode = 'OAI02', detail = '{"code": "suspended"}';
  end if;
  v_checks := jsonb_build_object('welcome_due', v_user.welcome_due);
  if p_rate is not null and jsonb_typeof(p_rate) = 'object' then
    select * into v_rate from oneai_private.take_rate_limit(
      p_rate->>'bucket', (p_rate->>'per_minute')::integer, (p_rate->>'burst')::integer);
    if not v_rate.admitted then
      raise exception 'user call refused' using errcode = 'OAI02',
        detail = jsonb_build_object('code', 'rate_limited', 'rate', to_jsonb(v_rate))::text;
    end if;
    v_checks := v_checks || jsonb_build_object('rate', to_jsonb(v_rate));
  end if;
  return v_checks;
end
$$;

create function oneai_private.chat_turn_refuse(p_code text, p_details jsonb default '{}'::jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'chat turn refused: %', p_code
    using errcode = 'OAI01', detail = (jsonb_build_object('code', p_code) || p_details)::text;
end
$$;

-- insert_message_at of oneai/db/conversations.py: write the message right after its parent as the new
-- tip (what was current from there on retires), then touch the conversation.
create function oneai_private.chat_insert_message_at(
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
    original_message_id, revision_number, revision_type, status, metadata)
  values (
    coalesce((p_message->>'id')::uuid, gen_random_uuid()), p_conversation_id, auth.uid(), p_message->>'role',
    p_message->>'content', p_message->>'model_id', (p_message->>'tokens_used')::integer, v_sequence,
    p_parent.id, v_original, v_revision,
    case when v_revision > 0 then
      case when p_message->>'role' = 'user' then 'user_edit' else 'regeneration' end
    end,
    coalesce(p_message->>'status', 'complete'), coalesce(p_message->'metadata', '{}'::jsonb))
  returning * into v_row;
  update public.conversations set last_message_at = now() where id = p_conversation_id;
  return v_row;
end
$$;

-- The steps of prepare_chat_turn, in the order the Python turn took them; refusals raise OAI01.
create function oneai_private.chat_prepare_steps(p_turn jsonb)
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
  v_reserve record;
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

  -- The conversation: by the client's chat id, new, or by id (created under it when asked and free).
  if v_client_id is not null then
    if v_create_missing then
      insert into public.conversations (user_id, client_id, title, metadata)
      values (v_caller, v_client_id, null, '{}'::jsonb)
      on conflict (user_id, client_id) do nothing
      returning * into v_conversation;
    end if;
    if v_conversation.id is null then
      select * into v_conversation from public.conversations c
       where c.user_id = v_caller and c.client_id = v_client_id;
      if not found then
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end if;
    end if;
  elsif v_conversation_id is null then
    insert into public.conversations (user_id, title, metadata) values (v_caller, null, '{}'::jsonb)
    returning * into v_conversation;
  else
    select * into v_conversation from public.conversations c where c.id = v_conversation_id;
    if not found then
      if not v_create_missing then
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end if;
      begin
        insert into public.conversations (id, user_id, title, metadata)
        values (v_conversation_id, v_caller, null, '{}'::jsonb)
        returning * into v_conversation;
      exception when unique_violation then
        -- Taken by someone else (RLS hid it from us): simply not found.
        perform oneai_private.chat_turn_refuse('conversation_not_found');
      end;
    end if;
  end if;

  -- One unit of the model's quota.
  select * into v_reserve from oneai_private.reserve_quota(v_offered->>'quota_key', 1);
  if not found then
    raise exception 'reserve_quota returned no row: the caller has no users row';
  end if;
  if not v_reserve.admitted then
    perform oneai_private.chat_turn_refuse('quota', jsonb_build_object('reserve', to_jsonb(v_reserve)));
  end if;
  if v_reserve.used_count * 100 >= v_reserve.quota_limit * (p_turn->>'warning_percent')::integer then
    v_warnings := oneai_private.claim_quota_warnings(v_offered->>'quota_key');
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
    'conversation', oneai_private.chat_conversation_json(v_conversation),
    'reserve', to_jsonb(v_reserve),
    'warnings', to_jsonb(v_warnings),
    'parent', oneai_private.chat_message_json(v_parent),
    'replaces', case when v_replaces.id is null then null else oneai_private.chat_message_json(v_replaces) end,
    'user_message',
      case when v_user_message.id is null then null else oneai_private.chat_message_json(v_user_message) end,
    'history', v_history);
end
$$;

create function oneai_private.prepare_chat_turn(p_turn jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_checks jsonb := oneai_private.chat_request_checks(p_turn->'rate');
  v_detail text;
  v_result jsonb;
begin
  begin
    v_result := oneai_private.chat_prepare_steps(p_turn);
  exception when sqlstate 'OAI01' then
    get stacked diagnostics v_detail = pg_exception_detail;
    v_result := jsonb_build_object('error', v_detail::jsonb);
  end;
  return v_result || v_checks;
end
$$;

-- finish_turn: the assistant message after the message it answers (or as a new revision of the reply it
-- regenerates), its usage record, and the caller's quotas as they stand after it.
create function oneai_private.chat_finish_steps(p_reply jsonb)
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
  perform oneai_private.record_usage(
    v_conversation_id, v_message.id, p_reply->>'quota_key', p_reply->>'requested_model',
    p_reply->'message'->>'model_id', p_reply->>'generation_id', (p_reply->>'prompt_tokens')::integer,
    (p_reply->>'completion_tokens')::integer, (p_reply->>'cost')::numeric, p_reply->'message'->>'status');
  select coalesce(jsonb_agg(to_jsonb(q) order by q.quota_key), '[]'::jsonb) into v_quotas
    from oneai_private.current_quotas() q;
  return jsonb_build_object('message', oneai_private.chat_message_json(v_message), 'quotas', v_quotas);
end
$$;

create function oneai_private.finish_chat_turn(p_reply jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_checks jsonb := oneai_private.chat_request_checks(p_reply->'rate');
  v_detail text;
  v_result jsonb;
begin
  begin
    v_result := oneai_private.chat_finish_steps(p_reply);
  exception when sqlstate 'OAI01' then
    get stacked diagnostics v_detail = pg_exception_detail;
    v_result := jsonb_build_object('error', v_detail::jsonb);
  end;
  return v_result || v_checks;
end
$$;

revoke execute on function oneai_private.chat_message_json(public.chat_messages) from public, anon;
revoke execute on function oneai_private.chat_conversation_json(public.conversations) from public, anon;
revoke execute on function oneai_private.chat_request_checks(jsonb) from public, anon;
revoke execute on function oneai_private.chat_turn_refuse(text, jsonb) from public, anon;
revoke execute on function oneai_private.chat_insert_message_at(uuid, public.chat_messages, jsonb) from public, anon;
revoke execute on function oneai_private.chat_prepare_steps(jsonb) from public, anon;
revoke execute on function oneai_private.prepare_chat_turn(jsonb) from public, anon;
revoke execute on function oneai_private.chat_finish_steps(jsonb) from public, anon;
revoke execute on function oneai_private.finish_chat_turn(jsonb) from public, anon;
grant execute on function oneai_private.chat_message_json(public.chat_messages) to authenticated;
grant execute on function oneai_private.chat_conversation_json(public.conversations) to authenticated;
grant execute on function oneai_private.chat_request_checks(jsonb) to authenticated;
grant execute on function oneai_private.chat_turn_refuse(text, jsonb) to authenticated;
grant execute on function oneai_private.chat_insert_message_at(uuid, public.chat_messages, jsonb) to authenticated;
grant execute on function oneai_private.chat_prepare_steps(jsonb) to authenticated;
grant execute on function oneai_private.prepare_chat_turn(jsonb) to authenticated;
grant execute on function oneai_private.chat_finish_steps(jsonb) to authenticated;
grant execute on function oneai_private.finish_chat_turn(jsonb) to authenticated;
