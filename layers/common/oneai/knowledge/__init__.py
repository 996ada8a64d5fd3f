"""The knowledge base: documents parsed, chunked, embedded and searched (issue 24)."""
