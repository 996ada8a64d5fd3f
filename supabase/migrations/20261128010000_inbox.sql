-- The inbox (issue 28 item 1, API.md "Chatbot conversations (the inbox)") and members' own conversation
-- search over message text (item 2).
--
-- Why functions: under Row Level Security the planner may not use a GIN index for `@@` (the operator is
-- not leakproof, so it must run after the policy's filter): a search under RLS reads every message the
-- caller may see. As public.search_chat_history does (20261121000000), each function below runs as its
-- owner and applies the same rule as the policies itself, so the full-text index is usable:
-- - inbox_conversations: `workspace_id in (select oneai_private.workspaces_with_role('editor'))`, the
--   visitor tables' policies of 20261127000000_widget.sql (editors and above; a viewer sees nothing);
-- - search_conversations: `user_id = auth.uid()`, the conversations' and messages' policies.
-- Everything else of the inbox (detail, triage, delete, stats, export) is plain SQL under those policies.

-- A chatbot's visitor conversations, newest first (started_at, id), with the filters of the list route:
-- the start's range [p_from, p_to), status, rating and a full-text query over the messages' text. A
-- conversation found by the query names its newest matching message and a ts_headline snippet of it.
create function public.inbox_conversations(
  p_chatbot_id uuid,
  p_from timestamptz,
  p_to timestamptz,
  p_status text,
  p_rating integer,
  p_query text,
  p_after_started timestamptz,
  p_after_id uuid,
  p_limit integer
)
returns table (
  id uuid, visitor_id text, page_url text, referrer text, user_agent text, locale text,
  started_at timestamptz, last_message_at timestamptz, messages integer, rating smallint, status text,
  tags text[], match_message_id uuid, match_snippet text
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_workspace uuid;
  v_query tsquery;
begin
  select c.workspace_id into v_workspace from public.chatbots c
    where c.id = p_chatbot_id
      and c.workspace_id in (select oneai_private.workspaces_with_role('editor'));
  if v_workspace is null then
    return;  -- not a chatbot of a workspace the caller edits: nothing, as under the policies
  end if;
  if p_query is not null then
    v_query := websearch_to_tsquery('simple'::regconfig, p_query);
  end if;
  return query
    with hits as (
      -- the matching messages of the workspace, through the GIN index; the newest per conversation
      select distinct on (m.conversation_id) m.conversation_id, m.id as message_id, m.content
      from public.visitor_messages m
      where v_query is not null and m.search_vector @@ v_query and m.workspace_id = v_workspace
      order by m.conversation_id, m.sequence_number desc
    ),
    page as (
      select vc.*, h.message_id as hit_id, h.content as hit_content
      from public.visitor_conversations vc
      left join hits h on h.conversation_id = vc.id
      where vc.chatbot_id = p_chatbot_id and vc.workspace_id = v_workspace
        and (v_query is null or h.conversation_id is not null)
        and (p_from is null or vc.started_at >= p_from)
        and (p_to is null or vc.started_at < p_to)
        and (p_status is null or vc.status = p_status)
        and (p_rating is null or vc.rating = p_rating)
        and (p_after_started is null or (vc.started_at, vc.id) < (p_after_started, p_after_id))
      order by vc.started_at desc, vc.id desc
      limit p_limit
    )
    select p.id, p.visitor_id, coalesce(p.page_url, v.page_url), coalesce(p.referrer, v.referrer),
           coalesce(p.user_agent, v.user_agent), coalesce(p.locale, v.locale), p.started_at,
           coalesce(p.last_message_at, (select max(m.created_at) from public.visitor_messages m
                                        where m.conversation_id = p.id)),
           greatest(p.message_count, (select count(*)::integer from public.visitor_messages m
                                      where m.conversation_id = p.id)),
           p.rating, p.status, p.tags, p.hit_id,
           case when p.hit_id is null then null
                else ts_headline('simple'::regconfig, p.hit_content, v_query,
                                 'StartSel="",StopSel="",MaxWords=30,MinWords=10,MaxFragments=1') end
    from page p
    left join public.widget_visitors v on v.id = p.visitor_ref
    order by p.started_at desc, p.id desc;
end
$$;

-- The caller's own conversations, newest activity first, whose title contains p_pattern (ILIKE, as the
-- list always did) or whose current messages match p_query (full text, through the GIN index). `match_in`
-- says where: 'title' when the title matched, else 'message'; a matching message (the newest) is named
-- whichever matched, with a ts_headline snippet.
create function public.search_conversations(
  p_pattern text,
  p_query text,
  p_after_updated timestamptz,
  p_after_id uuid,
  p_limit integer
)
returns table (
  id uuid, title text, created_at timestamptz, updated_at timestamptz, last_message_at timestamptz,
  metadata jsonb, match_in text, match_message_id uuid, match_snippet text
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  v_query tsquery := websearch_to_tsquery('simple'::regconfig, p_query);
begin
  if caller is null then
    return;
  end if;
  return query
    with hits as (
      select distinct on (m.conversation_id) m.conversation_id, m.id as message_id, m.content
      from public.chat_messages m
      where m.search_vector @@ v_query and m.user_id = caller and m.is_latest
      order by m.conversation_id, m.sequence_number desc
    ),
    page as (
      select c.id, c.title, c.created_at, c.updated_at, c.last_message_at, c.metadata,
             coalesce(c.title ilike p_pattern escape '\', false) as in_title,
             h.message_id as hit_id, h.content as hit_content
      from public.conversations c
      left join hits h on h.conversation_id = c.id
      where c.user_id = caller
        and (c.title ilike p_pattern escape '\' or h.conversation_id is not null)
        and (p_after_updated is null or (c.updated_at, c.id) < (p_after_updated, p_after_id))
      order by c.updated_at desc, c.id desc
      limit p_limit
    )
    select p.id, p.title, p.created_at, p.updated_at, p.last_message_at, p.metadata,
           case when p.in_title then 'title' else 'message' end, p.hit_id,
           case when p.hit_id is null then null
                else ts_headline('simple'::regconfig, p.hit_content, v_query,
                                 'StartSel="",StopSel="",MaxWords=30,MinWords=10,MaxFragments=1') end
    from page p
    order by p.updated_at desc, p.id desc;
end
$$;

-- The workspace of a visitor conversation when the caller is a member of it (any role), else null: the
-- inbox answers a viewer 403 (a member without the role) and everyone else 404. Names nothing more.
create function oneai_private.visitor_conversation_workspace(p_conversation_id uuid) returns uuid
language sql stable security definer
set search_path = ''
as $$
  select vc.workspace_id from public.visitor_conversations vc
  where vc.id = p_conversation_id
    and vc.workspace_id in (select oneai_private.workspaces_with_role('viewer'))
$$;

revoke execute on function oneai_private.visitor_conversation_workspace(uuid) from public, anon;
grant execute on function oneai_private.visitor_conversation_workspace(uuid) to authenticated;

revoke execute on function public.inbox_conversations(uuid, timestamptz, timestamptz, text, integer, text,
  timestamptz, uuid, integer) from public, anon;
revoke execute on function public.search_conversations(text, text, timestamptz, uuid, integer) from public, anon;
grant execute on function public.inbox_conversations(uuid, timestamptz, timestamptz, text, integer, text,
  timestamptz, uuid, integer) to authenticated;
grant execute on function public.search_conversations(text, text, timestamptz, uuid, integer) to authenticated;

