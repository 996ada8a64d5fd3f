-- The AI SDK names a chat with its own id (`generateId()`: short, not a UUID) before the server has seen
-- it. Such an id names the caller's conversation through `client_id`: unique per user, so the same client
-- id from two users is two conversations. Rows are still reached under RLS (`conversations_own`).
alter table public.conversations
  add column client_id text,
  add constraint conversations_client_id_length check (client_id is null or char_length(client_id) between 1 and 128),
  add constraint conversations_user_client_id unique (user_id, client_id);
