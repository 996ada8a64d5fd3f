"""The OpenRouter client of this container, as a FastAPI dependency, for the functions whose routes ask a
model while the request waits (the chat function, the widget's public chat): one client and connection
pool per container, rebuilt if the settings were swapped (tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from oneai.config import Settings, get_settings
from oneai.openrouter.client import OpenRouterClient, StreamTimeouts

_client: tuple[Settings, OpenRouterClient] | None = None


def get_openrouter() -> OpenRouterClient:
    global _client
    settings = get_settings()
    if _client is None or _client[0] is not settings:
        timeouts = StreamTimeouts(
            first_token=settings.openrouter_first_token_timeout_seconds,
            idle=settings.openrouter_idle_timeout_seconds,
        )
        _client = (settings, OpenRouterClient(settings, timeouts=timeouts))
    return _client[1]


OpenRouter = Annotated[OpenRouterClient, Depends(get_openrouter)]
