"""Workspaces and teams (API.md "Workspaces and teams"): the tenant of the chatbot platform, its members
and invitations. Membership is enforced by PostgreSQL's policies (supabase/migrations/*_workspaces.sql);
the service reads as the caller to tell a stranger (404) from a member without the role (403)."""
