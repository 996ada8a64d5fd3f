"""Ending the paid periods of subscriptions cancelled at the end of the period: such a subscription keeps
its tier until `paid_until` (see `oneai.billing.webhooks`); after that its user goes to the highest tier
their other subscriptions grant, free when none does (`change_tier`, reason `cancellation`, usage kept
under the new limits), and the subscription's `access_ended_at` is set, so each period ends once.

Run by the quota-reset sweep after the grace-period expiry, in batches, each its own short service
transaction: the subscriptions are locked with their users' rows (`FOR UPDATE SKIP LOCKED`: a sweep never
waits, so two cannot deadlock, nor a sweep and a webhook) and checked again on the locked row.
"""

from __future__ import annotations

from functools import partial

from oneai.billing import notices
from oneai.billing.batches import DEFAULT_BATCH_SIZE, DEFAULT_SAFETY_MARGIN, AfterCommit, run_in_batches
from oneai.billing.tier_change import change_tier
from oneai.billing.webhooks import decide_tier
from oneai.db import webhooks as repo
from oneai.db.connection import Connection, Database
from oneai.events import DomainEvent
from oneai.quota.sweep import TimeLeft
from oneai.timestamps import iso_z


def _end_paid_periods(conn: Connection, batch_size: int) -> tuple[int, list[AfterCommit]]:
    finished = repo.lock_finished_cancellations(conn, batch_size)
    ended: list[AfterCommit] = []
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
            metadata={"paid_until": iso_z(subscription.paid_until), "by": "quota_reset"},
        )
        extra = {
            "subscription_id": str(subscription.id),
            "user_id": str(subscription.user_id),
            "tier": decision.tier if decision is not None else subscription.user_tier,
            "tier_changed": changed,
        }
        event: DomainEvent | None = None
        if changed and decision is not None and notices.loses_tier(subscription.tier, decision.tier):
            event = notices.subscription_ended(
                user_id=subscription.user_id,
                subscription_id=subscription.id,
                tier=subscription.tier,
                status="cancelled",
                ended_at=subscription.paid_until,
            )
        # one action per row (the batch loop counts them): the log line, then the notice
        ended.append(
            partial(notices.log_and_publish, "paid period of a cancelled subscription ended", extra, event)
        )
    return len(finished), ended


def end_finished_cancellations(
    db: Database,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """End every paid period of a subscription cancelled at its end that is over; returns how many."""
    return run_in_batches(
        db, _end_paid_periods, batch_size=batch_size, time_left=time_left, safety_margin=safety_margin
    )
