"""Billing: subscription state and what it grants. `change_tier` (`oneai.billing.tier_change`) is the one
way a user's tier changes; `end_expired_grace_periods` (`oneai.billing.grace`) downgrades the users whose
payment grace period has run out (run by the quota-reset sweep)."""

from oneai.billing.tier_change import ChangeReason, UserSubscriptionStatus, change_tier

__all__ = ["ChangeReason", "UserSubscriptionStatus", "change_tier"]
