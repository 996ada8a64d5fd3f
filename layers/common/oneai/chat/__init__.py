"""One chat turn: reserve, persist, relay the model's deltas as AI SDK stream parts, settle.

No web framework here: the chat_stream function adapts these to FastAPI."""
