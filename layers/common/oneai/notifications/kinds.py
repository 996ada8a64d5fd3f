"""Email kinds, the preference each one obeys, and the preference defaults."""

from __future__ import annotations

from typing import Any, Final, Literal, TypeGuard, get_args

EmailKind = Literal[
    "welcome",
    "quota_warning",
    "payment_failed",
    "payment_received",
    "subscription_ended",
    "usage_summary",
    "workspace_invitation",
    "credits_low",
]
# The emails of a user's own account, each obeying one preference switch. The others go to an address
# that is not (yet) a user's (`workspace_invitation`: sent once, on an admin's request, no unsubscribe).
AccountEmailKind = Literal[
    "welcome",
    "quota_warning",
    "payment_failed",
    "payment_received",
    "subscription_ended",
    "usage_summary",
    "credits_low",
]
# The switches of `preferences.notifications` (API.md), each default true.
PreferenceKey = Literal["quota_warnings", "billing", "product", "usage_summary"]
PREFERENCE_KEYS: Final[tuple[PreferenceKey, ...]] = get_args(PreferenceKey)

PREFERENCE_OF: Final[dict[AccountEmailKind, PreferenceKey]] = {
    "welcome": "product",
    "quota_warning": "quota_warnings",
    "payment_failed": "billing",
    "payment_received": "billing",
    "subscription_ended": "billing",
    "usage_summary": "usage_summary",
    # A workspace's balance under its threshold: to its owner, who pays (issue 26).
    "credits_low": "billing",
}
# Receipts and payment failures go out whatever `billing` says (API.md): they are about the user's money.
ALWAYS_SENT: Final[frozenset[AccountEmailKind]] = frozenset({"payment_failed", "payment_received"})


def notification_preferences(preferences: dict[str, Any] | None) -> dict[PreferenceKey, bool]:
    """The effective switches: the stored ones over the defaults (all true); a non-bool counts as unset."""
    stored = (preferences or {}).get("notifications")
    stored = stored if isinstance(stored, dict) else {}
    return {key: stored[key] if isinstance(stored.get(key), bool) else True for key in PREFERENCE_KEYS}


def wants(kind: AccountEmailKind, preferences: dict[str, Any] | None) -> bool:
    return kind in ALWAYS_SENT or notification_preferences(preferences)[PREFERENCE_OF[kind]]


def is_account_kind(kind: EmailKind) -> TypeGuard[AccountEmailKind]:
    """An email of the user's own account (with a preference switch and an unsubscribe link)."""
    return kind in PREFERENCE_OF
