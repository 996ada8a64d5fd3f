-- Usage records of chat replies. Users may read their own records but never write them (they drive
-- billing and usage statistics), so the chat turn writes them through this function, which records for
-- the caller only and only against the caller's own message. Lives in oneai_private, which Supabase's
-- API does not expose.

create function oneai_private.record_usage(
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
  caller uuid := auth.uid();
  recorded uuid;
begin
  if caller is null then
    raise exception 'no caller' using errcode = '42501';
  end if;
  if not exists (
    select 1 from public.chat_messages m
    where m.id = p_message_id and m.conversation_id = p_conversation_id and m.user_id = caller
  ) then
    raise exception 'message not found' using errcode = 'P0002';
  end if;
  insert into public.usage_records (
    user_id, conversation_id, message_id, quota_key, requested_model, model_id, generation_id,
    prompt_tokens, completion_tokens, cost, status)
  values (
    caller, p_conversation_id, p_message_id, p_quota_key, p_requested_model, p_model_id, p_generation_id,
    greatest(coalesce(p_prompt_tokens, 0), 0), greatest(coalesce(p_completion_tokens, 0), 0),
    greatest(coalesce(p_cost, 0), 0), p_status)
  returning id into recorded;
  return recorded;
end
$$;

revoke execute on function oneai_private.record_usage(uuid, uuid, text, text, text, text, integer, integer, numeric, text)
  from public, anon;
grant execute on function oneai_private.record_usage(uuid, uuid, text, text, text, text, integer, integer, numeric, text)
  to authenticated, service_role;
