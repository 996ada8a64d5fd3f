-- Issue 13: a plan change by replacement never drops a paying customer; account erasure.
--
-- Plan change by replacement (oneai.billing.replacement): the new subscription names the one it replaces;
-- the old one keeps running until Razorpay activates the new one. The webhook that does so writes the
-- cancel the old one is owed (`replaced_cancel`: 'now' for an upgrade, 'cycle_end' for a downgrade) in
-- its own transaction; the cancel itself is a Razorpay call made after the commit (and retried by the
-- quota-reset sweep until Razorpay has answered), then marked 'done'.
alter table public.subscriptions
  add column replaces_subscription_id uuid references public.subscriptions (id) on delete set null,
  add column replaced_cancel text check (replaced_cancel in ('now', 'cycle_end', 'done'));

-- The sweep: owed cancels, and replacements still awaiting Checkout.
create index idx_subscriptions_replaced_cancel_owed on public.subscriptions (updated_at)
  where replaced_cancel in ('now', 'cycle_end');
create index idx_subscriptions_replacements_awaiting on public.subscriptions (created_at)
  where replaces_subscription_id is not null and status = 'created';

-- Erasure (DELETE /user): usage records are kept for accounting without the user's id.
alter table public.usage_records alter column user_id drop not null;
alter table public.usage_records drop constraint usage_records_user_id_fkey;
alter table public.usage_records add constraint usage_records_user_id_fkey
  foreign key (user_id) references public.users (id) on delete set null;

-- Erases one account in one transaction: usage records lose the user id, then the auth user is deleted,
-- which deletes public.users and, by `on delete cascade`, every row that references it (conversations,
-- messages, share links, quotas, subscriptions, history, and tables added later such as api_keys).
-- SECURITY DEFINER because the service role may not write auth.users on Supabase; only the service role
-- may execute it. Deleting a user that is gone already is no error (a retried erasure).
create function oneai_private.erase_user(p_user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  erased boolean;
begin
  update public.usage_records set user_id = null where user_id = p_user_id;
  delete from public.users where id = p_user_id;
  delete from auth.users where id = p_user_id;
  erased := found;
  return erased;
end
$$;

revoke execute on function oneai_private.erase_user(uuid) from public;
grant execute on function oneai_private.erase_user(uuid) to service_role;
