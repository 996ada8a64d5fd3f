"""The quota-reset function: EventBridge Scheduler -> sweep due quota rows, end expired grace periods,
purge workspaces deleted more than 30 days ago."""
