"""The chat_stream function: FastAPI served by uvicorn under the Lambda Web Adapter (response streaming)."""
