"""Workspace credits (issue 26): the balance, its ledger, purchases, and a reply's reserve/settle/refund."""
