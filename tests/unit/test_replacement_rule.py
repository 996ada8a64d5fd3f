"""The rule that says what a replaced subscription is owed, given how far its replacement has come."""

from __future__ import annotations

import uuid

import pytest

from oneai.billing.replacement import owed_cancel_kind
from oneai.db.replacements import ReplacedSubscription


def old(tier: str, status: str) -> ReplacedSubscription:
    return ReplacedSubscription(uuid.uuid4(), tier, status, False, "sub_Old0000000001")


@pytest.mark.parametrize(
    ("new_tier", "new_status", "old_tier", "old_status", "owed"),
    [
        # an upgrade waits for the first payment, then cancels the old one now
        ("enterprise", "created", "pro", "active", None),
        ("enterprise", "authenticated", "pro", "active", None),
        ("enterprise", "active", "pro", "active", "now"),
        ("enterprise", "pending", "pro", "active", None),
        # a downgrade commits at Checkout (it charges at the old cycle's end), cancelling at that end
        ("pro", "created", "enterprise", "active", None),
        ("pro", "authenticated", "enterprise", "active", "cycle_end"),
        ("pro", "active", "enterprise", "active", "cycle_end"),
        ("pro", "halted", "enterprise", "active", None),
        # an old one never paid has no cycle to finish
        ("pro", "authenticated", "enterprise", "created", "now"),
        # an old one that has ended is owed nothing
        ("enterprise", "active", "pro", "cancelled", "done"),
        ("pro", "authenticated", "enterprise", "completed", "done"),
        ("enterprise", "created", "pro", "expired", "done"),
    ],
)
def test_what_the_old_subscription_is_owed(
    new_tier: str, new_status: str, old_tier: str, old_status: str, owed: str | None
) -> None:
    assert owed_cancel_kind(new_tier, new_status, old(old_tier, old_status)) == owed


def test_a_replacement_whose_old_subscription_is_gone_owes_nothing() -> None:
    assert owed_cancel_kind("enterprise", "active", None) == "done"
