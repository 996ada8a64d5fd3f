-- Resumable replies (API.md "Resumable replies", docs/architecture.md "Resumable replies on Lambda").
--
-- A reply being generated is a `reply_streams` row (its id is the reply's message id, the stream's
-- `messageId`) with its state, plus the UI message stream parts written so far, in small batches
-- (`reply_stream_parts`, a few a second at most). Another invocation (a reload's resume GET, possibly on
-- another container) replays the batches and follows new ones; a stop request sets `stop_requested_at`,
-- which the generating invocation reads at its next flush. When the reply ends, its text is in the
-- message, the batches are deleted and the row keeps the reply folded (consecutive text deltas merged) so
-- that a reader that was behind the last batches still finishes the same message.

create table public.reply_streams (
  id uuid primary key,
  user_id uuid not null,
  conversation_id uuid not null,
  status text not null default 'streaming' check (status in ('streaming', 'complete', 'incomplete')),
  -- the seq of the last batch written (0: none yet), and the flushes so far (each one write)
  last_seq integer not null default 0,
  flushes integer not null default 1,
  -- the whole reply as parts, consecutive text deltas merged; set when it ends
  folded jsonb,
  stop_requested_at timestamptz,
  started_at timestamptz not null default now(),
  -- bumped by every flush (at least every few seconds): a row that stops beating lost its generator
  heartbeat_at timestamptz not null default now(),
  finished_at timestamptz,
  foreign key (conversation_id, user_id) references public.conversations (id, user_id) on delete cascade,
  check ((status = 'streaming') = (finished_at is null))
);

create index idx_reply_streams_conversation on public.reply_streams (conversation_id, started_at);

create table public.reply_stream_parts (
  reply_id uuid not null references public.reply_streams (id) on delete cascade,
  seq integer not null check (seq > 0),
  user_id uuid not null,
  -- a JSON array of UI message stream parts, in stream order, as sent (any part type)
  parts jsonb not null check (jsonb_typeof(parts) = 'array'),
  primary key (reply_id, seq)
);

alter table public.reply_streams enable row level security;
alter table public.reply_stream_parts enable row level security;
-- Supabase grants the API roles everything on new tables by default: take it back, grant what is used.
revoke all on public.reply_streams from anon, authenticated;
revoke all on public.reply_stream_parts from anon, authenticated;
grant select, insert, update, delete on public.reply_streams to authenticated;
grant select, insert, delete on public.reply_stream_parts to authenticated;
create policy reply_streams_own on public.reply_streams for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy reply_stream_parts_own on public.reply_stream_parts for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
