"""The analytics function: the scheduled rollup job (issue 28 item 2)."""
