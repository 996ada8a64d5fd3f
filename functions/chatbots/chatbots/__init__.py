"""The chatbots function: a workspace's chatbots and the system-prompt templates (FastAPI app + Mangum
behind the REST API)."""
