"""The inbox: a chatbot's visitor conversations as its workspace's editors read and triage them (issue 28)."""
