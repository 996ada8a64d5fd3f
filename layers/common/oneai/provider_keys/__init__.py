"""A workspace's own provider keys (issue 26): stored sealed, shown masked, tested, and chosen for a reply."""
