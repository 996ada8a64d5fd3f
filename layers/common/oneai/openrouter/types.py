"""Typed OpenRouter payloads: streamed chunks, usage, the non-streaming reply, and what a stream yields.

Every model ignores unknown keys: OpenRouter adds fields (`provider`, `native_finish_reason`, reasoning
details, cache token counts...) and a new field must never break a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatChunk",
    "ChatCompletion",
    "ChunkChoice",
    "ChunkDelta",
    "ChunkError",
    "ChunkImage",
    "CompletionChoice",
    "CompletionMessage",
    "ImageDelta",
    "ImageUrl",
    "KeepAlive",
    "RawChunk",
    "StreamDone",
    "StreamEvent",
    "StreamResult",
    "TextDelta",
    "Usage",
]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Usage(_Payload):
    """Token counts and the charged `cost` (credits, i.e. USD) that OpenRouter reports in the last chunk."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None


class ImageUrl(_Payload):
    url: str = ""


class ChunkImage(_Payload):
    """An image an image-output model made: `{"type": "image_url", "image_url": {"url": "data:..."}}`."""

    type: str = "image_url"
    image_url: ImageUrl = Field(default_factory=ImageUrl)


class ChunkDelta(_Payload):
    role: str | None = None
    content: str | None = None
    reasoning: str | None = None
    images: list[ChunkImage] = Field(default_factory=list)


class ChunkChoice(_Payload):
    index: int = 0
    delta: ChunkDelta = Field(default_factory=ChunkDelta)
    finish_reason: str | None = None


class ChunkError(_Payload):
    """An `error` object: an HTTP status as a number, or (inside a stream) sometimes a string code."""

    code: int | str | None = None
    message: str = ""
    metadata: dict[str, Any] | None = None


class ChatChunk(_Payload):
    """One `data:` event of a chat completion stream (`object: chat.completion.chunk`)."""

    id: str | None = None
    object: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    error: ChunkError | None = None

    @property
    def text(self) -> str:
        """The content delta of the first choice ("" when there is none)."""
        for choice in self.choices:
            if choice.index == 0:
                return choice.delta.content or ""
        return ""

    @property
    def image_urls(self) -> list[str]:
        """The URLs (data URLs) of the images in the first choice's delta."""
        for choice in self.choices:
            if choice.index == 0:
                return [image.image_url.url for image in choice.delta.images if image.image_url.url]
        return []

    @property
    def reasoning(self) -> str:
        for choice in self.choices:
            if choice.index == 0:
                return choice.delta.reasoning or ""
        return ""

    @property
    def finish_reason(self) -> str | None:
        for choice in self.choices:
            if choice.index == 0:
                return choice.finish_reason
        return None


class CompletionMessage(_Payload):
    role: str = "assistant"
    content: str | None = None


class CompletionChoice(_Payload):
    index: int = 0
    message: CompletionMessage = Field(default_factory=CompletionMessage)
    finish_reason: str | None = None


class ChatCompletion(_Payload):
    """A non-streaming reply (`object: chat.completion`)."""

    id: str | None = None
    model: str | None = None
    choices: list[CompletionChoice] = Field(default_factory=list)
    usage: Usage | None = None
    error: ChunkError | None = None

    @property
    def text(self) -> str:
        for choice in self.choices:
            if choice.index == 0:
                return choice.message.content or ""
        return ""


class StreamResult(_Payload):
    """What one stream produced, finished or not.

    `model` is the model that served the reply (from the chunks), which can differ from `requested_model`
    (fallbacks, `openrouter/auto`): bill `model`. `generation_id` comes from the `X-Generation-Id` header,
    else from the chunks' `id`; `GET /generation?id=` gives the cost later when a stream was cut before its
    usage arrived. `complete` is true only when the stream ended normally (`data: [DONE]`)."""

    text: str = ""
    # The images the model made, as data URLs, in the order they came.
    images: tuple[str, ...] = ()
    requested_model: str
    model: str | None = None
    generation_id: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    complete: bool = False

    @property
    def billed_model(self) -> str:
        return self.model or self.requested_model


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply to relay now."""

    text: str


@dataclass(frozen=True, slots=True)
class ImageDelta:
    """An image the model made (a `data:` URL), to store and relay now."""

    url: str


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Upstream sent a comment (`: OPENROUTER PROCESSING`): nothing to show, but a relay may use it to keep
    its own client connection alive."""

    comment: str


@dataclass(frozen=True, slots=True)
class StreamDone:
    """The last event of a stream that ended normally: the served model, generation id and usage."""

    result: StreamResult


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A chunk with choices, as OpenRouter sent it (a stream opened with `raw=True`, which relays chunks in
    OpenAI's wire format: tool calls, finish reasons and all). Usage-only chunks are kept back: the
    stream's result carries the usage."""

    payload: dict[str, Any]


StreamEvent = TextDelta | ImageDelta | KeepAlive | StreamDone | RawChunk
