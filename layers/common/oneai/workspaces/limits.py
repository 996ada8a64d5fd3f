"""The workspace limits of each tier: the defaults of `oneai.quota.tiers.WORKSPACE_LIMITS`, changed by the
`ONEAI_WORKSPACE_LIMITS` setting (JSON, e.g. `{"free": {"members": 3}}`; unknown tiers or keys are an
error, so a typo cannot silently leave a default in place)."""

from __future__ import annotations

import json
from functools import cache

from pydantic import ValidationError as PydanticValidationError

from oneai.config import Settings
from oneai.quota.tiers import TIER_NAMES, WORKSPACE_LIMITS, TierName, WorkspaceLimits

LimitName = str


class WorkspaceLimitsSettingError(ValueError):
    """ONEAI_WORKSPACE_LIMITS is not a valid change of the limits."""


@cache
def _limits(setting: str) -> dict[TierName, WorkspaceLimits]:
    if not setting.strip():
        return dict(WORKSPACE_LIMITS)
    try:
        changes = json.loads(setting)
    except json.JSONDecodeError as exc:
        raise WorkspaceLimitsSettingError("ONEAI_WORKSPACE_LIMITS is not JSON") from exc
    if not isinstance(changes, dict) or not set(changes) <= set(TIER_NAMES):
        raise WorkspaceLimitsSettingError(f"ONEAI_WORKSPACE_LIMITS: an object with keys among {TIER_NAMES}")
    limits = dict(WORKSPACE_LIMITS)
    for tier_name, change in changes.items():
        if not isinstance(change, dict):
            raise WorkspaceLimitsSettingError(f"ONEAI_WORKSPACE_LIMITS.{tier_name}: an object of limits")
        try:
            limits[tier_name] = WorkspaceLimits.model_validate({**limits[tier_name].model_dump(), **change})
        except PydanticValidationError as exc:
            raise WorkspaceLimitsSettingError(
                f"ONEAI_WORKSPACE_LIMITS.{tier_name}: {exc.errors()[0]['msg']}"
            ) from None
    return limits


def workspace_limits(settings: Settings, tier_name: TierName) -> WorkspaceLimits:
    return _limits(settings.workspace_limits)[tier_name]


def limit_by_tier(settings: Settings, name: LimitName) -> dict[str, int]:
    """One limit of every tier (`{"free": 1, "pro": 5, ...}`): what the SQL functions compare under their lock."""
    return {
        tier_name: int(getattr(limits, name)) for tier_name, limits in _limits(settings.workspace_limits).items()
    }
