"""The quota-reset function: EventBridge Scheduler -> sweep due quota rows, end expired grace periods."""
