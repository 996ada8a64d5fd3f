-- The workspace management routes (issue 23, part 3; API.md "Workspaces and teams"): what the routes need
-- beyond 20261123100000_workspaces.sql. Everything a user does runs as that user under RLS; the three
-- functions below are security definer on purpose, each for a step the caller's own policies cannot take,
-- and each acts only for `auth.uid()` (never for a user named by an argument):
-- - creating a workspace (the row and its owner's membership; the limit counted under a lock),
-- - accepting an invitation (the invitee is not a member yet),
-- - reading the owner's tier and count of owned workspaces (the limits of a workspace come from its
--   owner's tier), and fellow members' email and name (a user reads only their own users row).
-- The limits themselves are the application's configuration (oneai.workspaces.limits): the routes pass
-- the map tier -> limit, the functions count and compare under the lock that makes the count true.

-- ---------------------------------------------------------------------------------------------
-- Invitations: the service chooses the id (the token in the accept link is derived from it with a
-- server key, so the notifications function can rebuild the link without the token travelling in an event).
-- ---------------------------------------------------------------------------------------------
grant insert (id) on public.workspace_invitations to authenticated;

-- The invitation email is a notification like the others (claimed once per invitation, by its inviter).
alter table public.sent_notifications drop constraint sent_notifications_kind_check;
alter table public.sent_notifications add constraint sent_notifications_kind_check check (kind in (
  'welcome', 'quota_warning', 'payment_failed', 'payment_received', 'subscription_ended', 'usage_summary',
  'workspace_invitation'
));

-- ---------------------------------------------------------------------------------------------
-- The owner whose tier sets the limits moves to another owner when it stops being one
-- ---------------------------------------------------------------------------------------------
-- `workspaces.owner_id` names one of the members with role owner. When that member is demoted or leaves
-- (the last owner cannot: workspace_members_keep_an_owner), the earliest remaining owner takes its place.
-- Runs after workspace_members_keep_an_owner (triggers fire in name order). Security definer: the caller
-- may not write owner_id.
create function oneai_private.pass_workspace_ownership() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return null;
  end if;
  update public.workspaces w
  set owner_id = next_owner.user_id
  from (
    select m.user_id from public.workspace_members m
    where m.workspace_id = old.workspace_id and m.role = 'owner' and m.user_id <> old.user_id
    order by m.created_at, m.user_id limit 1
  ) next_owner
  where w.id = old.workspace_id and w.owner_id = old.user_id;
  return null;
end
$$;

create trigger workspace_members_pass_ownership after update of role or delete on public.workspace_members
  for each row execute function oneai_private.pass_workspace_ownership();

revoke execute on function oneai_private.pass_workspace_ownership() from public;

-- ---------------------------------------------------------------------------------------------
-- The refusal of a limit: null while `p_used` is under the tier's limit in `p_limits` ({"free": 1, ...})
-- ---------------------------------------------------------------------------------------------
create function oneai_private.plan_limit_refusal(p_limits jsonb, p_tier text, p_used integer) returns jsonb
language sql immutable
set search_path = ''
as $$
  select case when limits.value is null or p_used >= limits.value then
    jsonb_build_object('refused', 'plan_limit', 'used', p_used, 'limit', coalesce(limits.value, 0), 'tier', p_tier)
  end
  from (select (p_limits ->> p_tier)::integer as value) limits
$$;

revoke execute on function oneai_private.plan_limit_refusal(jsonb, text, integer) from public;

-- ---------------------------------------------------------------------------------------------
-- Create a workspace for auth.uid()
-- ---------------------------------------------------------------------------------------------
-- Answers {"id": ...} or {"refused": "name_taken"} or {"refused": "plan_limit", "used", "limit", "tier"}.
-- The caller's users row is locked first, so two concurrent creations by one owner are counted one after
-- the other (the limit holds) and the name check cannot race. `p_slug` is the slug made from the name; a
-- taken one gets the first free suffix `-2`, `-3`, ... (then a random one).
create function oneai_private.create_workspace(
  p_name text, p_slug text, p_industry text, p_owned_limits jsonb
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_tier text;
  v_refusal jsonb;
  v_used integer;
  v_id uuid;
  v_candidate text;
  v_attempt integer := 1;
begin
  if v_user is null then
    raise exception 'create_workspace needs an authenticated caller' using errcode = '42501';
  end if;
  select u.subscription_tier into v_tier from public.users u where u.id = v_user for update;
  if not found then
    raise exception 'unknown user' using errcode = '42501';
  end if;
  if exists (
    select 1 from public.workspaces w
    where w.owner_id = v_user and w.deleted_at is null and lower(w.name) = lower(p_name)
  ) then
    return jsonb_build_object('refused', 'name_taken');
  end if;
  select count(*) into v_used from public.workspaces w where w.owner_id = v_user and w.deleted_at is null;
  v_refusal := oneai_private.plan_limit_refusal(p_owned_limits, v_tier, v_used);
  if v_refusal is not null then
    return v_refusal;
  end if;
  v_candidate := p_slug;
  loop
    insert into public.workspaces (name, slug, industry, owner_id)
    values (p_name, v_candidate, p_industry, v_user)
    on conflict (slug) do nothing
    returning id into v_id;
    exit when v_id is not null;
    v_attempt := v_attempt + 1;
    v_candidate := case
      when v_attempt <= 20 then left(p_slug, 90) || '-' || v_attempt
      else left(p_slug, 90) || '-' || substr(md5(gen_random_uuid()::text), 1, 8)
    end;
  end loop;
  insert into public.workspace_members (workspace_id, user_id, role) values (v_id, v_user, 'owner');
  return jsonb_build_object('id', v_id);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Accept an invitation as auth.uid(), whose token email must be the invited one
-- ---------------------------------------------------------------------------------------------
-- Answers {"workspace_id": ...} or {"refused": "not_found" | "already_member"} or {"refused":
-- "plan_limit", ...}. The invitation row is locked (used once, even by two concurrent accepts), then the
-- workspace row (the member count is true: concurrent accepts and the last-owner trigger queue on it).
-- An unknown, used, expired or withdrawn token, one addressed to another email, or one of a deleted
-- workspace: all `not_found`. Whether the caller's email is verified is checked by the caller (the
-- service reads the token's claims); the email compared here is the verified token's own.
create function oneai_private.accept_workspace_invitation(p_token_hash bytea, p_member_limits jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_email text := nullif(lower(btrim((select auth.jwt()) ->> 'email')), '');
  v_invitation public.workspace_invitations;
  v_tier text;
  v_refusal jsonb;
  v_used integer;
begin
  if v_user is null or v_email is null then
    raise exception 'accept_workspace_invitation needs an authenticated caller with an email'
      using errcode = '42501';
  end if;
  select i.* into v_invitation from public.workspace_invitations i
  where i.token_hash = p_token_hash and i.accepted_at is null and i.expires_at > now()
  for update;
  if not found or lower(v_invitation.email) <> v_email then
    return jsonb_build_object('refused', 'not_found');
  end if;
  select u.subscription_tier into v_tier
  from public.workspaces w join public.users u on u.id = w.owner_id
  where w.id = v_invitation.workspace_id and w.deleted_at is null
  for update of w;
  if not found then
    return jsonb_build_object('refused', 'not_found');
  end if;
  if exists (
    select 1 from public.workspace_members m
    where m.workspace_id = v_invitation.workspace_id and m.user_id = v_user
  ) then
    return jsonb_build_object('refused', 'already_member', 'workspace_id', v_invitation.workspace_id);
  end if;
  select count(*) into v_used from public.workspace_members m where m.workspace_id = v_invitation.workspace_id;
  v_refusal := oneai_private.plan_limit_refusal(p_member_limits, v_tier, v_used);
  if v_refusal is not null then
    return v_refusal;
  end if;
  insert into public.workspace_members (workspace_id, user_id, role)
  values (v_invitation.workspace_id, v_user, v_invitation.role);
  update public.workspace_invitations set accepted_at = now() where id = v_invitation.id;
  return jsonb_build_object('workspace_id', v_invitation.workspace_id);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The owner's tier and how many live workspaces the owner has, for a member of the workspace
-- ---------------------------------------------------------------------------------------------
-- No row for a non-member (their requests are 404 before this is asked).
create function oneai_private.workspace_owner_plan(p_workspace_id uuid)
returns table (tier text, workspaces_owned integer)
language sql stable security definer
set search_path = ''
as $$
  select u.subscription_tier,
    (select count(*)::integer from public.workspaces o where o.owner_id = w.owner_id and o.deleted_at is null)
  from public.workspaces w join public.users u on u.id = w.owner_id
  where w.id = p_workspace_id and oneai_private.has_workspace_role(p_workspace_id, 'viewer')
$$;

-- ---------------------------------------------------------------------------------------------
-- The members of a workspace with their email and name, for a member of it
-- ---------------------------------------------------------------------------------------------
-- A user reads only their own users row; fellow members see each other's email and name here. No rows
-- for a non-member.
create function oneai_private.workspace_member_profiles(p_workspace_id uuid)
returns table (user_id uuid, email text, name text, role text, joined_at timestamptz)
language sql stable security definer
set search_path = ''
as $$
  select m.user_id, u.email, u.name, m.role, m.created_at
  from public.workspace_members m join public.users u on u.id = m.user_id
  where m.workspace_id = p_workspace_id and oneai_private.has_workspace_role(p_workspace_id, 'viewer')
$$;

revoke execute on function oneai_private.create_workspace(text, text, text, jsonb),
  oneai_private.accept_workspace_invitation(bytea, jsonb),
  oneai_private.workspace_owner_plan(uuid),
  oneai_private.workspace_member_profiles(uuid) from public;
grant execute on function oneai_private.create_workspace(text, text, text, jsonb),
  oneai_private.accept_workspace_invitation(bytea, jsonb),
  oneai_private.workspace_owner_plan(uuid),
  oneai_private.workspace_member_profiles(uuid) to authenticated;
