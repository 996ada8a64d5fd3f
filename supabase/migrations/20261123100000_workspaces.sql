-- Workspaces and teams (API.md "Workspaces and teams", issue 23): the tenant of the chatbot platform.
--
-- A workspace has members with a role (owner > admin > editor > viewer). Membership is the only way in:
-- every policy on a workspace's rows calls one helper, `oneai_private.has_workspace_role(workspace, role)`
-- ("is auth.uid() a member of this workspace with at least this role"), which costs one probe of the
-- members' primary key (workspace_id, user_id). Tables the platform adds later carry `workspace_id` and
-- use the same helper. Service work (sweeps, the purge, invitations accepted by someone not yet a member)
-- stays on the service role.
--
-- Every user has a personal workspace (role owner), created with the user in the same transaction (the
-- auth.users trigger; existing users get theirs below). It cannot be deleted, softly or for good, except
-- together with its owner (erasure).

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 100 and name = btrim(name)),
  -- From the name, unique; `personal-…` is the personal workspaces' own.
  slug text not null unique
    check (char_length(slug) between 1 and 100 and slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
  industry text check (industry is null or char_length(industry) between 1 and 100),
  settings jsonb not null default '{}'::jsonb check (jsonb_typeof(settings) = 'object'),
  -- The owner whose tier sets the workspace's limits (one of the members with role `owner`).
  owner_id uuid not null references public.users (id) on delete cascade,
  personal boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Soft delete: restorable for 30 days, then purged by the sweep.
  deleted_at timestamptz,
  -- Set by an admin of the product: its chatbots and widget stop answering.
  suspended_at timestamptz,
  constraint workspaces_personal_slug check (personal = (slug ~ '^personal-')),
  constraint workspaces_personal_not_deleted check (not (personal and deleted_at is not null))
);

create unique index workspaces_one_personal_per_owner on public.workspaces (owner_id) where personal;
-- "A name the caller already owns is 409": one live workspace of a name per owner.
create unique index workspaces_owner_name on public.workspaces (owner_id, lower(name)) where deleted_at is null;
create index idx_workspaces_deleted on public.workspaces (deleted_at) where deleted_at is not null;
create trigger workspaces_set_updated_at before update on public.workspaces
  for each row execute function public.set_updated_at();

create table public.workspace_members (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'editor', 'viewer')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- The index every policy check probes once.
  primary key (workspace_id, user_id)
);

create index idx_workspace_members_user on public.workspace_members (user_id);
create trigger workspace_members_set_updated_at before update on public.workspace_members
  for each row execute function public.set_updated_at();

create table public.workspace_invitations (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  email text not null check (char_length(email) between 3 and 320 and position('@' in email) > 1),
  -- Ownership is given by an owner to a member, not by invitation.
  role text not null check (role in ('admin', 'editor', 'viewer')),
  -- Only the SHA-256 of the token in the accept link is stored.
  token_hash bytea not null unique check (octet_length(token_hash) = 32),
  -- An erased inviter's pending invitations go with them (no reference to an erased user is kept).
  invited_by uuid not null references public.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '7 days',
  accepted_at timestamptz,
  check (expires_at > created_at)
);

-- One pending invitation per address and workspace.
create unique index workspace_invitations_pending on public.workspace_invitations (workspace_id, lower(email))
  where accepted_at is null;

-- ---------------------------------------------------------------------------------------------
-- The membership helpers: the one place a policy asks "may auth.uid() do this in workspace W"
-- ---------------------------------------------------------------------------------------------
create function oneai_private.workspace_role_rank(p_role text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select case p_role when 'viewer' then 1 when 'editor' then 2 when 'admin' then 3 when 'owner' then 4 end
$$;

-- Security definer so that it reads the members table past that table's own policies (which call it);
-- stable, so a policy evaluates it once per row at most, and the planner may hoist it.
create function oneai_private.has_workspace_role(p_workspace_id uuid, p_min_role text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.workspace_members m
    where m.workspace_id = p_workspace_id
      and m.user_id = (select auth.uid())
      and oneai_private.workspace_role_rank(m.role) >= oneai_private.workspace_role_rank(p_min_role)
  )
$$;

revoke execute on function oneai_private.workspace_role_rank(text) from public;
revoke execute on function oneai_private.has_workspace_role(uuid, text) from public;
grant execute on function oneai_private.workspace_role_rank(text) to authenticated, service_role;
grant execute on function oneai_private.has_workspace_role(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Guards the data keeps whoever writes it
-- ---------------------------------------------------------------------------------------------
-- A personal workspace goes only with its owner (erasure deletes the user first, then this row by
-- cascade); the check constraint above refuses its soft delete. The guards are security definer so that
-- they see every row whoever writes (the caller's policies would hide other users and members).
create function oneai_private.keep_personal_workspace() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.personal and exists (select 1 from public.users u where u.id = old.owner_id) then
    raise exception 'a personal workspace cannot be deleted' using errcode = '23514',
      constraint = 'workspaces_personal_not_deleted';
  end if;
  return old;
end
$$;

create trigger workspaces_keep_personal before delete on public.workspaces
  for each row execute function oneai_private.keep_personal_workspace();

-- Only an owner deletes or restores a workspace (admins may change everything else they are granted).
create function oneai_private.owner_deletes_workspace() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.deleted_at is distinct from old.deleted_at
     and current_user = 'authenticated'
     and not oneai_private.has_workspace_role(old.id, 'owner') then
    raise exception 'only an owner deletes or restores a workspace' using errcode = '42501';
  end if;
  return new;
end
$$;

create trigger workspaces_owner_deletes before update of deleted_at on public.workspaces
  for each row execute function oneai_private.owner_deletes_workspace();

-- A workspace never loses its last owner. The workspace row is locked first, so two concurrent
-- demotions or removals are serialized and the second one counts the first one's result. Rows that go
-- with their workspace (deleted) or their user (erased) are not checked.
create function oneai_private.keep_an_owner() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return null;
  end if;
  perform 1 from public.workspaces w where w.id = old.workspace_id for update;
  if not found or not exists (select 1 from public.users u where u.id = old.user_id) then
    return null;
  end if;
  if not exists (
    select 1 from public.workspace_members m where m.workspace_id = old.workspace_id and m.role = 'owner'
  ) then
    raise exception 'a workspace keeps at least one owner' using errcode = '23514',
      constraint = 'workspace_members_last_owner';
  end if;
  return null;
end
$$;

create trigger workspace_members_keep_an_owner after update of role or delete on public.workspace_members
  for each row execute function oneai_private.keep_an_owner();

-- Trigger functions only: nobody calls them.
revoke execute on function oneai_private.keep_personal_workspace(), oneai_private.owner_deletes_workspace(),
  oneai_private.keep_an_owner() from public;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security
-- ---------------------------------------------------------------------------------------------
alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;
alter table public.workspace_invitations enable row level security;
-- Supabase's default privileges give new tables to the API roles: take that back, grant what is needed.
revoke all on public.workspaces, public.workspace_members, public.workspace_invitations from anon, authenticated;

-- Workspaces: members read; admins change name, industry and settings; owners soft-delete and restore
-- (the trigger above). Creation (the workspace with its owner's membership) and suspension are the
-- service's.
grant select on public.workspaces to authenticated;
grant update (name, industry, settings, deleted_at) on public.workspaces to authenticated;
create policy workspaces_members_read on public.workspaces for select to authenticated
  using (oneai_private.has_workspace_role(id, 'viewer'));
create policy workspaces_admins_update on public.workspaces for update to authenticated
  using (oneai_private.has_workspace_role(id, 'admin'))
  with check (oneai_private.has_workspace_role(id, 'admin'));

-- Members: members see each other; admins add, change and remove members, but an owner's row (or
-- making someone an owner) takes an owner; anyone may remove themselves (leave).
grant select on public.workspace_members to authenticated;
grant insert (workspace_id, user_id, role), update (role), delete on public.workspace_members to authenticated;
create policy workspace_members_members_read on public.workspace_members for select to authenticated
  using (oneai_private.has_workspace_role(workspace_id, 'viewer'));
create policy workspace_members_admins_add on public.workspace_members for insert to authenticated
  with check (
    oneai_private.has_workspace_role(workspace_id, case when role = 'owner' then 'owner' else 'admin' end)
  );
create policy workspace_members_admins_change on public.workspace_members for update to authenticated
  using (oneai_private.has_workspace_role(workspace_id, case when role = 'owner' then 'owner' else 'admin' end))
  with check (
    oneai_private.has_workspace_role(workspace_id, case when role = 'owner' then 'owner' else 'admin' end)
  );
create policy workspace_members_admins_remove_or_leave on public.workspace_members for delete to authenticated
  using (
    user_id = (select auth.uid())
    or oneai_private.has_workspace_role(workspace_id, case when role = 'owner' then 'owner' else 'admin' end)
  );

-- Invitations: admins list, send and withdraw them; the token's hash is never read back. Accepting one
-- (by someone who is not a member yet) is the service's.
grant select (id, workspace_id, email, role, invited_by, created_at, expires_at, accepted_at)
  on public.workspace_invitations to authenticated;
grant insert (workspace_id, email, role, token_hash, invited_by, expires_at), delete
  on public.workspace_invitations to authenticated;
create policy workspace_invitations_admins_read on public.workspace_invitations for select to authenticated
  using (oneai_private.has_workspace_role(workspace_id, 'admin'));
create policy workspace_invitations_admins_send on public.workspace_invitations for insert to authenticated
  with check (oneai_private.has_workspace_role(workspace_id, 'admin') and invited_by = (select auth.uid()));
create policy workspace_invitations_admins_withdraw on public.workspace_invitations for delete to authenticated
  using (oneai_private.has_workspace_role(workspace_id, 'admin'));

-- ---------------------------------------------------------------------------------------------
-- The personal workspace: created with the user, in the same transaction
-- ---------------------------------------------------------------------------------------------
create function oneai_private.create_personal_workspace(p_user_id uuid) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_workspace_id uuid;
begin
  insert into public.workspaces (name, slug, owner_id, personal)
  values ('Personal', 'personal-' || replace(p_user_id::text, '-', ''), p_user_id, true)
  on conflict (owner_id) where personal do nothing
  returning id into v_workspace_id;
  if v_workspace_id is null then
    select w.id into v_workspace_id from public.workspaces w where w.owner_id = p_user_id and w.personal;
  end if;
  insert into public.workspace_members (workspace_id, user_id, role)
  values (v_workspace_id, p_user_id, 'owner')
  on conflict (workspace_id, user_id) do nothing;
  return v_workspace_id;
end
$$;

revoke execute on function oneai_private.create_personal_workspace(uuid) from public;
grant execute on function oneai_private.create_personal_workspace(uuid) to service_role;

-- The sign-up trigger of 20261121000000_initial_schema.sql, with the personal workspace.
create or replace function public.handle_new_auth_user() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.users (id, email, name, picture_url, provider_type, provider_id)
  values (
    new.id,
    new.email,
    coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name'),
    coalesce(new.raw_user_meta_data ->> 'avatar_url', new.raw_user_meta_data ->> 'picture'),
    new.raw_app_meta_data ->> 'provider',
    coalesce(new.raw_user_meta_data ->> 'provider_id', new.raw_user_meta_data ->> 'sub')
  )
  on conflict (id) do nothing;
  perform public.assign_tier_quotas(new.id, 'free', false);
  perform oneai_private.create_personal_workspace(new.id);
  return new;
end
$$;

-- Existing users get theirs now.
select oneai_private.create_personal_workspace(u.id) from public.users u;

-- ---------------------------------------------------------------------------------------------
-- Erasure (20261122030000_plan_change_and_erasure.sql), with workspaces: the ones the user alone owns
-- go with everything in them; a shared one another owner keeps passes to that owner. Memberships and
-- the personal workspace then go with the user, by cascade.
-- ---------------------------------------------------------------------------------------------
create or replace function oneai_private.erase_user(p_user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  erased boolean;
begin
  update public.workspaces w
  set owner_id = (
    select m.user_id from public.workspace_members m
    where m.workspace_id = w.id and m.role = 'owner' and m.user_id <> p_user_id
    order by m.created_at, m.user_id limit 1
  )
  where w.owner_id = p_user_id and not w.personal
    and exists (
      select 1 from public.workspace_members m
      where m.workspace_id = w.id and m.role = 'owner' and m.user_id <> p_user_id
    );
  delete from public.workspaces w
  where not w.personal
    and exists (
      select 1 from public.workspace_members m
      where m.workspace_id = w.id and m.user_id = p_user_id and m.role = 'owner'
    )
    and not exists (
      select 1 from public.workspace_members m
      where m.workspace_id = w.id and m.role = 'owner' and m.user_id <> p_user_id
    );
  update public.usage_records set user_id = null where user_id = p_user_id;
  delete from public.users where id = p_user_id;
  delete from auth.users where id = p_user_id;
  erased := found;
  return erased;
end
$$;
