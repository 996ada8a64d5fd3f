"""The history sent to the model: the current branch up to the new reply, trimmed to fit the model's
context window, newest messages kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from oneai.attachments.models import AttachmentRef
from oneai.conversations.models import Message
from oneai.errors import PayloadTooLargeError

# Without a tokenizer per model, ~4 characters per token is the usual estimate for mixed text; the
# per-message overhead covers role markers. It errs on the side of sending less.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
MAX_REPLY_TOKENS = 4096
# What one image costs in the window: providers count a typical picture at several hundred tokens.
TOKENS_PER_IMAGE = 800

# An attachment -> its OpenRouter image content part (`{"type": "image_url", "image_url": {"url"}}`).
ImagePart = Callable[[AttachmentRef], dict[str, Any]]


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE


def reply_budget(context_length: int) -> int:
    """Tokens kept free for the reply: a quarter of the window, at most MAX_REPLY_TOKENS."""
    return min(MAX_REPLY_TOKENS, context_length // 4)


def _content(message: Message, image_part: ImagePart | None) -> str | list[dict[str, Any]]:
    """Text alone, or (for a model that reads images) text and image content parts."""
    # Only user messages carry images to the model (providers take image parts from the user only).
    if image_part is None or not message.attachments or message.role != "user":
        return message.content
    text: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    return text + [image_part(attachment) for attachment in message.attachments]


def build_context(
    history: Sequence[Message], context_length: int, *, image_part: ImagePart | None = None
) -> list[dict[str, Any]]:
    """OpenRouter `messages` for `history` (oldest first), newest kept within the window. With
    `image_part` (a model that reads images) messages carry their attachments as image parts; without
    it, attachments are left out.

    The last message (the user's turn) must fit on its own, or the request is 413: silently cutting
    the user's own words would answer a question they did not ask.
    """
    budget = context_length - reply_budget(context_length)
    kept: list[dict[str, Any]] = []
    used = 0
    for message in reversed(history):
        images = len(message.attachments) if image_part is not None and message.role == "user" else 0
        if not message.content and not images:
            continue
        cost = estimate_tokens(message.content) + images * TOKENS_PER_IMAGE
        if used + cost > budget:
            if not kept:
                raise PayloadTooLargeError(
                    "The message is too long for this model's context window",
                    details={"context_length": context_length, "estimated_tokens": cost},
                )
            break
        kept.append({"role": message.role, "content": _content(message, image_part)})
        used += cost
    kept.reverse()
    return kept
