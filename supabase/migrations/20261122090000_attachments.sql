-- Issue 12: attachments (images) of messages. The bytes live in S3 (a private bucket; objects under
-- users/<user_id>/<attachment_id>); PostgreSQL holds only what describes them, under RLS.
--
-- status: `pending` from POST /attachments until the object is seen in S3 (a HEAD on first read),
-- then `uploaded`. A row gets its conversation and message when a chat turn attaches it (a user message)
-- or when a model's reply produced it (an assistant message).
create table public.attachments (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  conversation_id uuid,
  message_id uuid references public.chat_messages (id) on delete cascade,
  filename text not null check (length(filename) between 1 and 255),
  media_type text not null check (media_type in ('image/png', 'image/jpeg', 'image/webp', 'image/gif')),
  size bigint not null check (size > 0),
  s3_key text not null unique,
  status text not null default 'pending' check (status in ('pending', 'uploaded')),
  created_at timestamptz not null default now(),
  -- Same user as the conversation; deleting the conversation deletes the rows (the objects are deleted
  -- by the service after the transaction commits).
  constraint attachments_conversation foreign key (conversation_id, user_id)
    references public.conversations (id, user_id) on delete cascade,
  constraint attachments_message_has_conversation check (message_id is null or conversation_id is not null)
);

create index idx_attachments_user on public.attachments (user_id, created_at desc);
create index idx_attachments_conversation on public.attachments (conversation_id) where conversation_id is not null;
create index idx_attachments_message on public.attachments (message_id) where message_id is not null;

alter table public.attachments enable row level security;
-- Supabase's default privileges give new tables to the API roles: take that back, grant what is needed.
revoke all on public.attachments from anon, authenticated;
grant select, insert, update, delete on public.attachments to authenticated;
-- Writing: a conversation named on the row must be the caller's too (checked before any foreign key
-- could answer for someone else's conversation).
create policy attachments_own on public.attachments for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and (
      conversation_id is null
      or exists (
        select 1 from public.conversations c
        where c.id = conversation_id and c.user_id = (select auth.uid())
      )
    )
  );

-- A shared conversation's attachment, for anyone holding the share token: only while the link is active
-- and only an attachment its snapshot lists (so a revoked link stops serving files at once, and a link
-- never reaches a file added after it was made). A function, like shared_conversation_snapshot, so that
-- nobody can list other people's attachments.
create function public.shared_attachment(p_token text, p_attachment_id uuid)
returns setof public.attachments
language sql stable
security definer
set search_path = ''
as $$
  select a.*
  from public.share_links s
  join public.attachments a on a.conversation_id = s.conversation_id and a.id = p_attachment_id
  where s.token = p_token and s.revoked_at is null
    and jsonb_path_exists(
      s.snapshot, '$.messages[*].attachments[*] ? (@.id == $id)', jsonb_build_object('id', p_attachment_id::text))
$$;

revoke execute on function public.shared_attachment(text, uuid) from public, anon, authenticated;
grant execute on function public.shared_attachment(text, uuid) to anon, authenticated;
