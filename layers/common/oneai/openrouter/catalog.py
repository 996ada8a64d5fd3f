"""The model catalog (`GET /models`) and cost arithmetic.

Prices are USD per token as decimal strings ("0.00000015"). Router models such as `openrouter/auto` list
"-1" (the price depends on the model picked): that, a missing price or anything unparseable is "unknown"
(None), never a negative number.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from oneai.openrouter.types import Usage

__all__ = ["ModelPricing", "OpenRouterModel", "cost_of", "parse_price"]


def parse_price(value: object) -> Decimal | None:
    """A per-token price, or None when it is unknown (missing, unparseable, negative such as -1)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        price = value
    elif isinstance(value, int | str):
        try:
            price = Decimal(str(value).strip())
        except InvalidOperation:
            return None
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        price = Decimal(str(value))
    else:
        return None
    if not price.is_finite() or price < 0:
        return None
    return price if price else Decimal(0)  # no "-0"


class ModelPricing(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt: Decimal | None = None
    completion: Decimal | None = None

    @field_validator("prompt", "completion", mode="before")
    @classmethod
    def _price(cls, value: object) -> Decimal | None:
        return parse_price(value)


class OpenRouterModel(BaseModel):
    """One catalog entry: `GET /models` -> `data[]`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str = ""
    context_length: int | None = None
    pricing: ModelPricing = Field(default_factory=ModelPricing)
    input_modalities: list[str] = Field(default_factory=lambda: ["text"])
    output_modalities: list[str] = Field(default_factory=lambda: ["text"])

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        if not data.get("name"):
            data["name"] = data.get("id", "")
        if not isinstance(data.get("pricing"), dict):
            data["pricing"] = {}
        context = data.get("context_length")
        if not isinstance(context, int) or isinstance(context, bool) or context <= 0:
            data["context_length"] = None
        architecture = data.get("architecture")
        if not isinstance(architecture, dict):
            architecture = {}
        inputs, outputs = _modalities(data, architecture)
        data["input_modalities"], data["output_modalities"] = inputs, outputs
        return data

    @property
    def modalities(self) -> dict[str, list[str]]:
        return {"input": list(self.input_modalities), "output": list(self.output_modalities)}

    @property
    def generates_images(self) -> bool:
        return "image" in self.output_modalities

    @property
    def price_known(self) -> bool:
        """False for router models such as `openrouter/auto` (the price depends on the model picked)."""
        return self.pricing.prompt is not None and self.pricing.completion is not None


def _strings(value: object) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [v for v in value if v]
    return None


def _modalities(data: dict[str, Any], architecture: dict[str, Any]) -> tuple[list[str], list[str]]:
    inputs = _strings(architecture.get("input_modalities"))
    outputs = _strings(architecture.get("output_modalities"))
    if inputs is None or outputs is None:
        legacy = data.get("modalities")
        if isinstance(legacy, dict):
            inputs = inputs or _strings(legacy.get("input"))
            outputs = outputs or _strings(legacy.get("output"))
        elif isinstance(legacy, list) and inputs is None:
            inputs = _strings(legacy)
    if inputs is None or outputs is None:
        modality = architecture.get("modality")  # e.g. "text+image->text"
        if isinstance(modality, str) and "->" in modality:
            left, _, right = modality.partition("->")
            inputs = inputs or [m for m in left.split("+") if m]
            outputs = outputs or [m for m in right.split("+") if m]
    return inputs or ["text"], outputs or ["text"]


def cost_of(usage: Usage | None, model: OpenRouterModel | None = None) -> Decimal:
    """The cost of a reply in USD: OpenRouter's reported `usage.cost` when present, else tokens times the
    catalog prices (unknown prices count as 0). Never negative."""
    if usage is None:
        return Decimal(0)
    if usage.cost is not None and math.isfinite(usage.cost) and usage.cost >= 0:
        return Decimal(str(usage.cost))
    if model is None:
        return Decimal(0)
    prompt_price = model.pricing.prompt or Decimal(0)
    completion_price = model.pricing.completion or Decimal(0)
    total = prompt_price * max(0, usage.prompt_tokens) + completion_price * max(0, usage.completion_tokens)
    return max(total, Decimal(0))
