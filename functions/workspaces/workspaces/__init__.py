"""The workspaces function: workspaces, members and invitations of the chatbot platform (FastAPI app +
Mangum behind the REST API)."""
