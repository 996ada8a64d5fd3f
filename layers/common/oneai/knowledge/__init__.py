"""The knowledge base (issue 24): documents parsed, chunked, embedded and searched."""
