"""The docs function: search and read the user guide, leave feedback (FastAPI app + Mangum behind the REST API)."""
