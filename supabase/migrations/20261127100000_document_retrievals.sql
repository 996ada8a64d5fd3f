-- A document's `stats.retrievals_30d` (API.md "Documents (knowledge)": `GET /documents/{id}`): how many
-- replies of the last 30 days used a passage of it, counted from the `sources` saved with each reply (a
-- member's chatbot chat and a visitor's widget chat alike; a reply citing two of its passages counts once).
-- The GIN indexes answer the containment test (`sources @> [{"document_id": ...}]`) without scanning the
-- messages. Security definer because a member sees only their own messages under RLS while the count is the
-- workspace's: the function checks the caller's membership of the document's workspace itself and returns
-- only a number.

create index idx_chat_messages_sources on public.chat_messages using gin (sources jsonb_path_ops)
  where sources is not null;
create index idx_visitor_messages_sources on public.visitor_messages using gin (sources jsonb_path_ops)
  where sources is not null;

create function oneai_private.document_retrievals_30d(p_document_id uuid)
returns integer
language sql
stable
security definer
set search_path = ''
as $$
  with cited (needle) as (
    select jsonb_build_array(jsonb_build_object('document_id', d.id))
    from public.documents d
    where d.id = p_document_id
      and d.workspace_id in (select oneai_private.workspaces_with_role('viewer'))
  )
  select case when not exists (select 1 from cited) then null else (
    (select count(*) from public.chat_messages m, cited
      where m.sources @> cited.needle and m.created_at > now() - interval '30 days')
    + (select count(*) from public.visitor_messages m, cited
      where m.sources @> cited.needle and m.created_at > now() - interval '30 days')
  )::integer end
$$;

revoke execute on function oneai_private.document_retrievals_30d(uuid) from public;
grant execute on function oneai_private.document_retrievals_30d(uuid) to authenticated, service_role;
