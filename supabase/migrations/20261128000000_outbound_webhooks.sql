-- Outbound webhooks (issue 28 item 3; API.md "Outbound webhooks"): one endpoint per workspace with the
-- events it wants, its deliveries (one per domain event and endpoint, idempotent on the pair) and every
-- attempt of each delivery.
--
-- The signing secret (`whsec_<base64 32 bytes>`) is stored sealed (`sealed_secret`: oneai.crypto.envelope's
-- `Sealed.to_bytes()`, bound to the workspace). As for provider keys, the `authenticated` role has no
-- SELECT on that column: no query of a user, an admin's included, can read it; the service role opens it
-- to sign a delivery (the delivery function, a test delivery).
--
-- RLS (API.md roles: admins "members, keys, everything but billing and delete"): admins and owners of the
-- workspace read and write its endpoint and read its deliveries and attempts; editors, viewers and
-- strangers see nothing (the routes answer 403 to a member below admin, 404 to a stranger). Deliveries and
-- attempts are written by the service role only (the delivery function).

create table public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  url text not null check (char_length(url) between 1 and 2048),
  events text[] not null check (
    cardinality(events) between 1 and 4
    and events <@ array['document.processed', 'document.failed', 'conversation.rated', 'credits.low']::text[]
  ),
  sealed_secret bytea not null check (octet_length(sealed_secret) between 32 and 4096),
  status text not null default 'enabled' check (status in ('enabled', 'disabled')),
  disabled_reason text check (disabled_reason is null or char_length(disabled_reason) <= 500),
  disabled_at timestamptz,
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhook_endpoints_one_per_workspace unique (workspace_id),
  constraint webhook_endpoints_disabled_reason check ((status = 'disabled') = (disabled_reason is not null))
);

create trigger webhook_endpoints_set_updated_at before update on public.webhook_endpoints
  for each row execute function public.set_updated_at();

create table public.webhook_deliveries (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  -- The domain event's id (EventBridge's `id`; a test event's own): one delivery per event and endpoint.
  event_id text not null check (char_length(event_id) between 1 and 200),
  event_type text not null check (char_length(event_type) between 1 and 64),
  -- The exact body sent at every attempt (the signature is over these bytes).
  body text not null,
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz,
  last_error text check (last_error is null or char_length(last_error) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  constraint webhook_deliveries_once unique (endpoint_id, event_id)
);

create index idx_webhook_deliveries_workspace on public.webhook_deliveries (workspace_id, created_at desc, id desc);
create index idx_webhook_deliveries_due on public.webhook_deliveries (next_attempt_at) where status = 'pending';

create trigger webhook_deliveries_set_updated_at before update on public.webhook_deliveries
  for each row execute function public.set_updated_at();

create table public.webhook_attempts (
  id uuid primary key default gen_random_uuid(),
  delivery_id uuid not null references public.webhook_deliveries (id) on delete cascade,
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  number integer not null check (number >= 1),
  attempted_at timestamptz not null,
  status_code integer check (status_code is null or status_code between 100 and 599),
  duration_ms integer not null check (duration_ms >= 0),
  -- At most 500 characters of the receiver's answer (never our request's body).
  response_excerpt text check (response_excerpt is null or char_length(response_excerpt) <= 500),
  error text check (error is null or char_length(error) <= 500),
  constraint webhook_attempts_once unique (delivery_id, number)
);

-- ---------------------------------------------------------------------------------------------
-- Row Level Security and column rights
-- ---------------------------------------------------------------------------------------------
alter table public.webhook_endpoints enable row level security;
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_attempts enable row level security;
revoke all on public.webhook_endpoints, public.webhook_deliveries, public.webhook_attempts from anon, authenticated;

-- Every column but `sealed_secret`.
grant select (id, workspace_id, url, events, status, disabled_reason, disabled_at, created_by, created_at,
  updated_at) on public.webhook_endpoints to authenticated;
grant insert (workspace_id, url, events, sealed_secret, created_by) on public.webhook_endpoints to authenticated;
grant update (url, events, sealed_secret, status, disabled_reason, disabled_at)
  on public.webhook_endpoints to authenticated;
grant delete on public.webhook_endpoints to authenticated;
grant select on public.webhook_deliveries, public.webhook_attempts to authenticated;
grant all on public.webhook_endpoints, public.webhook_deliveries, public.webhook_attempts to service_role;

create policy webhook_endpoints_admins_read on public.webhook_endpoints for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy webhook_endpoints_admins_create on public.webhook_endpoints for insert to authenticated
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('admin')) and created_by = (select auth.uid())
  );
create policy webhook_endpoints_admins_change on public.webhook_endpoints for update to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')))
  with check (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy webhook_endpoints_admins_delete on public.webhook_endpoints for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy webhook_deliveries_admins_read on public.webhook_deliveries for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy webhook_attempts_admins_read on public.webhook_attempts for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
