"""The admin function: users, suspensions, quota overrides, subscriptions, workspaces, analytics and the audit log
under /admin (FastAPI app + Mangum behind the REST API). Admins only."""
