-- Workspaces, second step (issue 23): membership checked once per statement, not once per row; the
-- indexes the admin list, the purge and erasure read.
--
-- 20261123100000_workspaces.sql's policies call `oneai_private.has_workspace_role(workspace_id, role)`
-- on every row: the argument is the row's own column, so PostgreSQL cannot hoist the call, and a
-- security definer function is never inlined: a list of 10,000 rows ran the helper's query 10,000 times
-- (bench/workspace_rls.py measures it). The policies below ask the other way round: "is the row's
-- workspace among the caller's workspaces with at least role R", `workspace_id in (select
-- oneai_private.workspaces_with_role(R))`. That subquery does not depend on the row, so it runs once per
-- statement (one probe of idx_workspace_members_user) and each row costs a hash lookup. The meaning of
-- every policy is unchanged. Tables the platform adds later use the same form.

-- The workspaces in which auth.uid() is a member with at least `p_min_role`. Security definer so that
-- it reads the members table past that table's own policies (which call it).
create function oneai_private.workspaces_with_role(p_min_role text) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.workspace_id from public.workspace_members m
  where m.user_id = (select auth.uid())
    and oneai_private.workspace_role_rank(m.role) >= oneai_private.workspace_role_rank(p_min_role)
$$;

revoke execute on function oneai_private.workspaces_with_role(text) from public;
grant execute on function oneai_private.workspaces_with_role(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The same policies, in the once-per-statement form
-- ---------------------------------------------------------------------------------------------
drop policy workspaces_members_read on public.workspaces;
drop policy workspaces_admins_update on public.workspaces;
create policy workspaces_members_read on public.workspaces for select to authenticated
  using (id in (select oneai_private.workspaces_with_role('viewer')));
create policy workspaces_admins_update on public.workspaces for update to authenticated
  using (id in (select oneai_private.workspaces_with_role('admin')))
  with check (id in (select oneai_private.workspaces_with_role('admin')));

-- An owner's row (or making someone an owner) takes an owner; any other row an admin.
drop policy workspace_members_members_read on public.workspace_members;
drop policy workspace_members_admins_add on public.workspace_members;
drop policy workspace_members_admins_change on public.workspace_members;
drop policy workspace_members_admins_remove_or_leave on public.workspace_members;
create policy workspace_members_members_read on public.workspace_members for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));
create policy workspace_members_admins_add on public.workspace_members for insert to authenticated
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('owner'))
    or (role <> 'owner' and workspace_id in (select oneai_private.workspaces_with_role('admin')))
  );
create policy workspace_members_admins_change on public.workspace_members for update to authenticated
  using (
    workspace_id in (select oneai_private.workspaces_with_role('owner'))
    or (role <> 'owner' and workspace_id in (select oneai_private.workspaces_with_role('admin')))
  )
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('owner'))
    or (role <> 'owner' and workspace_id in (select oneai_private.workspaces_with_role('admin')))
  );
create policy workspace_members_admins_remove_or_leave on public.workspace_members for delete to authenticated
  using (
    user_id = (select auth.uid())
    or workspace_id in (select oneai_private.workspaces_with_role('owner'))
    or (role <> 'owner' and workspace_id in (select oneai_private.workspaces_with_role('admin')))
  );

drop policy workspace_invitations_admins_read on public.workspace_invitations;
drop policy workspace_invitations_admins_send on public.workspace_invitations;
drop policy workspace_invitations_admins_withdraw on public.workspace_invitations;
create policy workspace_invitations_admins_read on public.workspace_invitations for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));
create policy workspace_invitations_admins_send on public.workspace_invitations for insert to authenticated
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('admin')) and invited_by = (select auth.uid())
  );
create policy workspace_invitations_admins_withdraw on public.workspace_invitations for delete to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));

-- ---------------------------------------------------------------------------------------------
-- Indexes
-- ---------------------------------------------------------------------------------------------
-- By owner: the admin list's owner filter, erasure's hand-over, and the cascade when an owner's users
-- row is deleted (a foreign key without an index is a scan of the table per deleted user).
create index idx_workspaces_owner on public.workspaces (owner_id);
-- The admin list, newest first, paged by (created_at, id).
create index idx_workspaces_created on public.workspaces (created_at desc, id desc);

-- ---------------------------------------------------------------------------------------------
-- The audit log names workspaces too (an admin suspends and unsuspends them)
-- ---------------------------------------------------------------------------------------------
alter table public.audit_log drop constraint audit_log_target_type_check;
alter table public.audit_log add constraint audit_log_target_type_check
  check (target_type in ('user', 'subscription', 'workspace'));
