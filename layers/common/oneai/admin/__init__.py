"""Admin: run the business. Users, suspensions, quota overrides, subscription sync, analytics, and the
append-only audit log every admin write goes through (`oneai.admin.audit`)."""
