-- Notifications (issue 15): at most one email per user, kind and occasion, and the welcome occasion.
--
-- `sent_notifications` is claimed (insert ... on conflict do nothing, committed) before an email is sent,
-- marked `sent` after SES accepted it, and deleted again when sending failed (so a retry can send).
-- Service role only: no policy for `authenticated`, so users cannot read or forge claims.
create table public.sent_notifications (
  user_id uuid not null references public.users (id) on delete cascade,
  kind text not null check (kind in (
    'welcome', 'quota_warning', 'payment_failed', 'payment_received', 'subscription_ended', 'usage_summary'
  )),
  -- What makes this email one of a kind: e.g. `small_messages:2026-11-23T00:00:00Z:80`, a payment id, a month.
  occasion text not null check (length(occasion) between 1 and 200),
  status text not null default 'sending' check (status in ('sending', 'sent')),
  claimed_at timestamptz not null default now(),
  sent_at timestamptz,
  -- SES's MessageId (or the .eml file name under `make dev`).
  provider_message_id text,
  primary key (user_id, kind, occasion)
);

alter table public.sent_notifications enable row level security;
revoke all on public.sent_notifications from anon, authenticated;
grant select, insert, update, delete on public.sent_notifications to service_role;

-- The welcome occasion: set once the UserCreated event was accepted by the bus (at the user's first
-- authenticated request). Existing users were welcomed long ago (or never will be): not retroactively.
alter table public.users add column welcome_announced_at timestamptz;
update public.users set welcome_announced_at = created_at;
