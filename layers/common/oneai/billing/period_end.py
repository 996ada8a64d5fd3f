"""Ending the paid periods of subscriptions cancelled at the end of the period: such a subscription keeps
its tier until `paid_until` (see `oneai.billing.webhooks`); after that its user goes to the highest tier
their other subscriptions grant, free when none does (`change_tier`, reason `cancellation`, usage kept
under the new limits), and the subscription's `access_ended_at` is set, so each period ends once.

Run by the quota-reset sweep after the grace-period expiry, in batches, each its own short service
transaction: the subscriptions are locked with their users' rows (`FOR UPDATE SKIP LOCKED`: a sweep never
waits, so two cannot deadlock, nor a sweep and a webhook) and checked again on the locked row.
"""

from __future__ import annotations

import time
from typing import Final

from oneai.billing.tier_change import change_tier
from oneai.billing.webhooks import decide_tier
from oneai.db import webhooks as repo
from oneai.db.connection import Database
from oneai.logging import logger
from oneai.quota.sweep import TimeBudget, TimeLeft

DEFAULT_BATCH_SIZE: Final = 100
DEFAULT_SAFETY_MARGIN: Final = 2.0


def end_finished_cancellations(
    db: Database,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """End every paid period of a subscription cancelled at its end that is over; returns how many."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    budget = TimeBudget(time_left, safety_margin)
    ended = 0
    while budget.allows_another_batch():
        batch_started = time.monotonic()
        with db.service_transaction() as conn:
            finished = repo.lock_finished_cancellations(conn, batch_size)
            ended_here = []
            for subscription in finished:
                if not repo.end_access(conn, subscription.id):
                    continue
                decision = decide_tier(subscription.tier, False, subscription.other_tiers, subscription.user_tier)
                changed = decision is not None and change_tier(
                    conn,
                    user_id=subscription.user_id,
                    new_tier=decision.tier,
                    reason="cancellation",
                    subscription_id=subscription.id,
                    subscription_status="cancelled" if decision.decides else None,
                    metadata={"paid_until": subscription.paid_until.isoformat(), "by": "quota_reset"},
                )
                tier = decision.tier if decision is not None else subscription.user_tier
                ended_here.append((subscription, tier, changed))
        budget.record_batch(time.monotonic() - batch_started)
        for subscription, tier, changed in ended_here:  # committed
            logger.info(
                "paid period of a cancelled subscription ended",
                extra={
                    "subscription_id": str(subscription.id),
                    "user_id": str(subscription.user_id),
                    "tier": tier,
                    "tier_changed": changed,
                },
            )
        ended += len(ended_here)
        if len(finished) < batch_size:
            break
    return ended
