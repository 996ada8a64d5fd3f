"""Ending grace periods that have run out: a `pending` subscription (a renewal payment failed) keeps its
paid tier until `grace_until`; after that the subscription is `halted` and its user goes back to free
(`change_tier`, reason `payment_failure`, usage kept under the free limits).

Run by the quota-reset sweep, in batches, each its own short service transaction: the expired
subscriptions are locked with their users' rows (`FOR UPDATE SKIP LOCKED`: a sweep never waits, so two
cannot deadlock) and checked again when halted, so two sweeps (or a sweep and a webhook that settles the
subscription) never end the same grace period twice. A user with
another active subscription keeps their tier; only the expired subscription is halted.
"""

from __future__ import annotations

from functools import partial

from oneai.billing import notices
from oneai.billing.batches import DEFAULT_BATCH_SIZE, DEFAULT_SAFETY_MARGIN, AfterCommit, run_in_batches
from oneai.billing.tier_change import change_tier
from oneai.db import quota_sweep as repo
from oneai.db.connection import Connection, Database
from oneai.events import DomainEvent
from oneai.quota.sweep import TimeLeft
from oneai.timestamps import iso_z


def _end_grace_periods(conn: Connection, batch_size: int) -> tuple[int, list[AfterCommit]]:
    expired = repo.lock_expired_grace_periods(conn, batch_size)
    ended: list[AfterCommit] = []
    for subscription in expired:
        if not repo.halt_subscription(conn, subscription.id):
            continue
        downgraded = not subscription.other_active and change_tier(
            conn,
            user_id=subscription.user_id,
            new_tier="free",
            reason="payment_failure",
            subscription_id=subscription.id,
            subscription_status="halted",
            metadata={"grace_until": iso_z(subscription.grace_until), "by": "quota_reset"},
        )
        extra = {
            "subscription_id": str(subscription.id),
            "user_id": str(subscription.user_id),
            "downgraded_to_free": downgraded,
        }
        event: DomainEvent | None = None
        if downgraded:  # the user lost the tier: tell them (after the commit)
            event = notices.subscription_ended(
                user_id=subscription.user_id,
                subscription_id=subscription.id,
                tier=subscription.tier,
                status="halted",
                ended_at=subscription.grace_until,
            )
        # one action per row (the batch loop counts them): the log line, then the notice
        ended.append(partial(notices.log_and_publish, "grace period ended", extra, event))
    return len(expired), ended


def end_expired_grace_periods(
    db: Database,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """Halt every pending subscription whose grace period has ended and downgrade its user to free.
    Returns how many grace periods this call ended."""
    return run_in_batches(
        db, _end_grace_periods, batch_size=batch_size, time_left=time_left, safety_margin=safety_margin
    )
