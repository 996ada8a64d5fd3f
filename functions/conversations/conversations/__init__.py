"""The conversations function: FastAPI app + Mangum behind the REST API."""
