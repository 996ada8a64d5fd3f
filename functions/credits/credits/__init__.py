"""The credits function: who pays for a workspace's replies (its credits: balance, purchase, ledger, usage; its own provider keys)."""
