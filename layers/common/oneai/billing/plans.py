"""The plans on sale: each paid tier, its Razorpay plan id (configuration: `RAZORPAY_PLAN_IDS`, from SSM in
AWS), price, currency, quotas and features. Tier numbers come from `oneai.quota.tiers`."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from oneai.config import Settings
from oneai.errors import ValidationError, field_error
from oneai.quota.tiers import PRICE_CURRENCY, TIER_NAMES, TIERS, ResetFrequency, TierName

FEATURES: Final[dict[TierName, tuple[str, ...]]] = {
    "free": ("Fast models", "A few large-model messages a month", "Image generation", "Conversation history"),
    "pro": ("Everything in Free", "Claude Sonnet and other large models", "5x the messages", "Priority support"),
    "enterprise": ("Everything in Pro", "Claude Opus", "50x the messages", "Custom pricing and invoicing"),
}
TIER_ORDER: Final[dict[str, int]] = {name: rank for rank, name in enumerate(TIER_NAMES)}


class PlanQuota(BaseModel):
    limit: int
    reset_frequency: ResetFrequency


class Plan(BaseModel):
    tier: TierName
    name: str
    # In the smallest unit of `currency` (the plan's 999 is 9.99); null is custom pricing.
    price: int | None
    currency: str
    interval: str
    quotas: dict[str, PlanQuota]
    features: list[str]
    # Whether `POST /subscription/create` sells it: a paid tier with a Razorpay plan configured.
    purchasable: bool


def list_plans(settings: Settings) -> list[Plan]:
    plan_ids = settings.plan_ids()
    return [
        Plan(
            tier=tier.name,
            name=tier.display_name,
            price=tier.price,
            currency=PRICE_CURRENCY,
            interval="monthly",
            quotas={
                key: PlanQuota(limit=q.limit, reset_frequency=q.reset_frequency) for key, q in tier.quotas.items()
            },
            features=list(FEATURES[tier.name]),
            purchasable=tier.name != "free" and tier.name in plan_ids,
        )
        for tier in TIERS.values()
    ]


def plan_id_for(settings: Settings, tier: str) -> str:
    """The Razorpay plan of a paid tier; 422 on `tier` when it is not on sale."""
    plan_id = settings.plan_ids().get(tier) if tier != "free" else None
    if plan_id is None:
        raise ValidationError(
            "This plan cannot be bought",
            details={"errors": [field_error("tier", f"not a purchasable tier: {tier}", "tier_not_purchasable")]},
        )
    return plan_id


def tier_for_plan(settings: Settings, plan_id: str | None) -> TierName | None:
    for tier, configured in settings.plan_ids().items():
        if configured == plan_id and tier in TIERS:
            return tier  # type: ignore[return-value]
    return None


def is_upgrade(old_tier: str, new_tier: str) -> bool:
    return TIER_ORDER.get(new_tier, 0) > TIER_ORDER.get(old_tier, 0)
