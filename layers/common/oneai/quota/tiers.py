"""The subscription tiers of the product plan (`SUBSCRIPTION_TIERS` in platform-plan.md), as typed constants.

The same limits and frequencies are the rows of `public.tier_quota_limits` (the initial migration),
which provisioning and tier changes read; a test keeps the two equal. `/subscription/plans` and
`/user/quota` read names, prices and limits from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict

TierName = Literal["free", "pro", "enterprise"]
QuotaKey = Literal["small_messages", "large_messages", "image_generation"]
ResetFrequency = Literal["3hour", "daily", "monthly"]

TIER_NAMES: Final[tuple[TierName, ...]] = get_args(TierName)
QUOTA_KEYS: Final[tuple[QuotaKey, ...]] = get_args(QuotaKey)
RESET_FREQUENCIES: Final[tuple[ResetFrequency, ...]] = get_args(ResetFrequency)

# The plan's prices are integers in the smallest unit of its currency: Pro's 999 is "$9.99".
PRICE_CURRENCY: Final = "USD"


class QuotaLimit(BaseModel):
    model_config = ConfigDict(frozen=True)

    limit: int
    reset_frequency: ResetFrequency


class Tier(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: TierName
    display_name: str
    # In cents of PRICE_CURRENCY; None is "custom pricing" (Enterprise).
    price: int | None
    quotas: Mapping[QuotaKey, QuotaLimit]


def _quotas(small: int, large: int, images: int) -> Mapping[QuotaKey, QuotaLimit]:
    return {
        "small_messages": QuotaLimit(limit=small, reset_frequency="monthly"),
        "large_messages": QuotaLimit(limit=large, reset_frequency="monthly"),
        "image_generation": QuotaLimit(limit=images, reset_frequency="3hour"),
    }


TIERS: Final[Mapping[TierName, Tier]] = MappingProxyType(
    {
        "free": Tier(name="free", display_name="Free", price=0, quotas=_quotas(100, 20, 5)),
        "pro": Tier(name="pro", display_name="Pro", price=999, quotas=_quotas(500, 100, 10)),
        "enterprise": Tier(
            name="enterprise", display_name="Enterprise", price=None, quotas=_quotas(5000, 1000, 100)
        ),
    }
)


def tier(name: TierName) -> Tier:
    return TIERS[name]


def quota_limit(tier_name: TierName, quota_key: QuotaKey) -> QuotaLimit:
    return TIERS[tier_name].quotas[quota_key]


class WorkspaceLimits(BaseModel):
    """What the workspaces of an owner on a tier may hold (API.md "Third round: shared rules"). The
    defaults below; `ONEAI_WORKSPACE_LIMITS` may change them (`oneai.workspaces.limits`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspaces_owned: int
    members: int
    chatbots: int
    documents: int
    storage_bytes: int
    widget_messages_per_day: int


MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB


def _workspace_limits(*values: int) -> WorkspaceLimits:
    """In the order of the contract's table: workspaces owned, members, chatbots, documents, storage bytes,
    widget messages a day."""
    return WorkspaceLimits(**dict(zip(WorkspaceLimits.model_fields, values, strict=True)))


WORKSPACE_LIMITS: Final[Mapping[TierName, WorkspaceLimits]] = MappingProxyType(
    {
        "free": _workspace_limits(1, 2, 1, 10, 20 * MIB, 100),
        "pro": _workspace_limits(5, 10, 10, 500, GIB, 5_000),
        "enterprise": _workspace_limits(50, 100, 100, 10_000, 20 * GIB, 100_000),
    }
)
