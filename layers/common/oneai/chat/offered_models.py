"""The models OneAI offers: each maps to one quota key and the tiers that may use it.

OpenRouter's `/models` supplies the rest (name, context length, prices, modalities); a model offered here
but missing upstream is not listed (it cannot be served), and upstream models not offered here are not
shown at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from pydantic import BaseModel

from oneai.errors import ForbiddenError, ValidationError, field_error
from oneai.openrouter.catalog import OpenRouterModel
from oneai.quota.tiers import TIER_NAMES, QuotaKey, TierName

ALL_TIERS: Final = frozenset(TIER_NAMES)
PAID_TIERS: Final[frozenset[TierName]] = frozenset({"pro", "enterprise"})
DEFAULT_CONTEXT_LENGTH: Final = 8192


@dataclass(frozen=True, slots=True)
class OfferedModel:
    model_id: str
    quota_key: QuotaKey
    tiers: frozenset[TierName]
    # OpenRouter's `models` fallbacks, tried in order when this one is down: same quota class, any tier
    # that may use this model may use them. The reply is billed as the model that served it.
    fallbacks: tuple[str, ...] = ()


OFFERED_MODELS: Final[tuple[OfferedModel, ...]] = (
    OfferedModel("openai/gpt-4o-mini", "small_messages", ALL_TIERS, fallbacks=("google/gemini-2.5-flash",)),
    OfferedModel("google/gemini-2.5-flash", "small_messages", ALL_TIERS, fallbacks=("openai/gpt-4o-mini",)),
    OfferedModel("anthropic/claude-3.5-haiku", "small_messages", ALL_TIERS),
    OfferedModel("meta-llama/llama-3.3-70b-instruct", "small_messages", ALL_TIERS),
    OfferedModel("openai/gpt-4o", "large_messages", ALL_TIERS),
    OfferedModel("anthropic/claude-sonnet-4", "large_messages", PAID_TIERS, fallbacks=("openai/gpt-4o",)),
    OfferedModel("anthropic/claude-opus-4", "large_messages", frozenset({"enterprise"})),
    OfferedModel("google/gemini-2.5-flash-image-preview", "image_generation", ALL_TIERS),
    # Served only by the offline stand-in of `make dev` (it is not in OpenRouter's real list).
    OfferedModel("oneai/offline", "small_messages", ALL_TIERS),
)
_BY_ID: Final = {m.model_id: m for m in OFFERED_MODELS}
# The model of a chat turn that names none and whose caller prefers none (or one their tier lacks).
TIER_DEFAULT_MODELS: Final[dict[TierName, str]] = {
    "free": "openai/gpt-4o-mini",
    "pro": "openai/gpt-4o-mini",
    "enterprise": "openai/gpt-4o-mini",
}


class ModelPrices(BaseModel):
    """USD per token as decimal strings, as OpenRouter gives them; null when unknown (router models)."""

    prompt: str | None
    completion: str | None


def _price(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class ModelListing(BaseModel):
    """One item of `GET /chat/models`."""

    id: str
    name: str
    context_length: int | None
    pricing: ModelPrices
    modalities: dict[str, list[str]]  # {"input": ["text", "image"], "output": ["text"]}
    quota_key: QuotaKey
    available: bool


class ModelList(BaseModel):
    """`GET /chat/models`: every offered model the catalog has, on one page."""

    items: list[ModelListing]
    next_cursor: None = None


def offered_model(model_id: str, tier: str) -> OfferedModel:
    """The offered model, if the tier may use it: unknown is 422, outside the tier is 403."""
    offered = _BY_ID.get(model_id)
    if offered is None:
        raise ValidationError(
            "This model is not offered",
            details={"errors": [field_error("model", f"not an offered model: {model_id}", "model_not_offered")]},
        )
    if tier not in offered.tiers:
        raise ForbiddenError(
            "Your plan does not include this model",
            details={"model": model_id, "tier": tier, "tiers": sorted(offered.tiers)},
        )
    return offered


def listings(upstream: list[OpenRouterModel], tier: str) -> list[ModelListing]:
    by_id = {m.id: m for m in upstream}
    items = []
    for offered in OFFERED_MODELS:
        model = by_id.get(offered.model_id)
        if model is None:
            continue
        items.append(
            ModelListing(
                id=model.id,
                name=model.name,
                context_length=model.context_length,
                pricing=ModelPrices(
                    prompt=_price(model.pricing.prompt), completion=_price(model.pricing.completion)
                ),
                modalities=model.modalities,
                quota_key=offered.quota_key,
                available=tier in offered.tiers,
            )
        )
    return items
