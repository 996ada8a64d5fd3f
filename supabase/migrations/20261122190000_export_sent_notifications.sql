-- GET /user/export lists the notifications sent to the caller, read in the caller's own transaction (under
-- Row Level Security, like every other section of the export). Users may read their own rows, and only
-- the columns that say what was sent and when: never SES's message id. They still cannot insert, update
-- or delete (the claims stay the notifications function's, as the service role).
grant select (user_id, kind, occasion, status, claimed_at, sent_at) on public.sent_notifications to authenticated;
create policy sent_notifications_read_own on public.sent_notifications for select to authenticated
  using (user_id = (select auth.uid()));
