"""Email kinds, the preference each one obeys, and the preference defaults."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

EmailKind = Literal[
    "welcome", "quota_warning", "payment_failed", "payment_received", "subscription_ended", "usage_summary"
]
# The switches of `preferences.notifications` (API.md), each default true.
PreferenceKey = Literal["quota_warnings", "billing", "product", "usage_summary"]
PREFERENCE_KEYS: Final[tuple[PreferenceKey, ...]] = get_args(PreferenceKey)

PREFERENCE_OF: Final[dict[EmailKind, PreferenceKey]] = {
    "welcome": "product",
    "quota_warning": "quota_warnings",
    "payment_failed": "billing",
    "payment_received": "billing",
    "subscription_ended": "billing",
    "usage_summary": "usage_summary",
}
# Receipts and payment failures go out whatever `billing` says (API.md): they are about the user's money.
ALWAYS_SENT: Final[frozenset[EmailKind]] = frozenset({"payment_failed", "payment_received"})


def notification_preferences(preferences: dict[str, Any] | None) -> dict[PreferenceKey, bool]:
    """The effective switches: the stored ones over the defaults (all true); a non-bool counts as unset."""
    stored = (preferences or {}).get("notifications")
    stored = stored if isinstance(stored, dict) else {}
    return {key: stored[key] if isinstance(stored.get(key), bool) else True for key in PREFERENCE_KEYS}


def wants(kind: EmailKind, preferences: dict[str, Any] | None) -> bool:
    return kind in ALWAYS_SENT or notification_preferences(preferences)[PREFERENCE_OF[kind]]
