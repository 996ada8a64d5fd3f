"""OpenRouter: SSE decoding, typed chunks and errors, the streaming client with retries, the model catalog.

No web framework here: `oneai.chat` relays what `OpenRouterClient.stream_chat` yields.
"""

from oneai.openrouter.catalog import ModelPricing, OpenRouterModel, cost_of, parse_price
from oneai.openrouter.client import ChatStream, OpenRouterClient, RetryPolicy, StreamTimeouts
from oneai.openrouter.errors import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    FirstTokenTimeoutError,
    GatewayTimeoutError,
    IdleTimeoutError,
    InsufficientCreditsError,
    MidStreamError,
    ModerationError,
    OpenRouterError,
    PartialStreamError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    UpstreamConnectionError,
    error_for_code,
    error_for_status,
)
from oneai.openrouter.sse import ServerSentEvent, SSEComment, SSEDecoder
from oneai.openrouter.types import (
    ChatChunk,
    ChatCompletion,
    KeepAlive,
    StreamDone,
    StreamEvent,
    StreamResult,
    TextDelta,
    Usage,
)

__all__ = [
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ChatChunk",
    "ChatCompletion",
    "ChatStream",
    "FirstTokenTimeoutError",
    "GatewayTimeoutError",
    "IdleTimeoutError",
    "InsufficientCreditsError",
    "KeepAlive",
    "MidStreamError",
    "ModelPricing",
    "ModerationError",
    "OpenRouterClient",
    "OpenRouterError",
    "OpenRouterModel",
    "PartialStreamError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryPolicy",
    "SSEComment",
    "SSEDecoder",
    "ServerError",
    "ServerSentEvent",
    "StreamDone",
    "StreamEvent",
    "StreamResult",
    "StreamTimeouts",
    "TextDelta",
    "UpstreamConnectionError",
    "Usage",
    "cost_of",
    "error_for_code",
    "error_for_status",
    "parse_price",
]
