"""The account function: quota, usage and profile routes under /user (FastAPI app + Mangum behind the REST API)."""
