"""The history sent to the model: the current branch up to the new reply, trimmed to fit the model's
context window, newest messages kept."""

from __future__ import annotations

from collections.abc import Sequence

from oneai.conversations.models import Message
from oneai.errors import PayloadTooLargeError

# Without a tokenizer per model, ~4 characters per token is the usual estimate for mixed text; the
# per-message overhead covers role markers. It errs on the side of sending less.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
MAX_REPLY_TOKENS = 4096


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE


def reply_budget(context_length: int) -> int:
    """Tokens kept free for the reply: a quarter of the window, at most MAX_REPLY_TOKENS."""
    return min(MAX_REPLY_TOKENS, context_length // 4)


def build_context(history: Sequence[Message], context_length: int) -> list[dict[str, str]]:
    """OpenRouter `messages` for `history` (oldest first), newest kept within the window.

    The last message (the user's turn) must fit on its own, or the request is 413: silently cutting
    the user's own words would answer a question they did not ask.
    """
    budget = context_length - reply_budget(context_length)
    kept: list[dict[str, str]] = []
    used = 0
    for message in reversed(history):
        if not message.content:
            continue
        cost = estimate_tokens(message.content)
        if used + cost > budget:
            if not kept:
                raise PayloadTooLargeError(
                    "The message is too long for this model's context window",
                    details={"context_length": context_length, "estimated_tokens": cost},
                )
            break
        kept.append({"role": message.role, "content": message.content})
        used += cost
    kept.reverse()
    return kept
