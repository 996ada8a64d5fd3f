"""Plan changes by replacement: a paying customer is never left without the plan they paid for.

When Razorpay will not change a subscription's plan in place (it refuses the edit for UPI, eMandate and
Indian cards, and edits nothing that is not `authenticated` or `active`), the billing API creates a new
subscription for the new tier whose notes carry the user id, the tier and the Razorpay id it `replaces`,
and stores it linked to the old one (`replaces_subscription_id`). The old one keeps running. Then:

1. Razorpay activates the new one (its webhook; `oneai.billing.webhooks` applies it): the webhook writes,
   on the new row, what the old one is owed (`owed_cancel_kind`): an upgrade cancels the old one now, once
   the new one is `active` (paid); a downgrade cancels the old one at the end of its paid cycle, as soon as
   the new one is `authenticated` (Checkout done; its `start_at` is that cycle's end, so it charges then).
   The tier is decided as always, by the highest tier any subscription grants, so it changes once.
2. After the commit the webhook makes that cancel at Razorpay (`settle_owed_cancels`) and records what
   Razorpay answered; when Razorpay is down, the quota-reset sweep makes it later (it is owed until done).
3. A replacement whose Checkout is never completed is cancelled by the sweep once it is older than
   `ONEAI_REPLACEMENT_CHECKOUT_HOURS` (`cancel_abandoned_replacements`); the old one is left untouched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from uuid import UUID

from oneai.billing.razorpay_client import (
    RazorpayClient,
    RazorpayRefusedError,
    RazorpaySubscription,
    from_epoch,
    get_razorpay_client,
)
from oneai.billing.tier_change import TIER_RANK
from oneai.db import replacements as repo
from oneai.db import subscriptions as subscriptions_repo
from oneai.db.connection import Connection, Database
from oneai.errors import UnavailableError, UpstreamError
from oneai.logging import logger
from oneai.timestamps import iso_z

OwedKind = Literal["now", "cycle_end", "done"]
ENDED_STATUSES: Final = frozenset(repo.ENDED_STATUSES)
KNOWN_STATUSES: Final = frozenset(
    {"created", "authenticated", "active", "pending", "halted", "cancelled", "completed", "expired", "paused"}
)
DEFAULT_LIMIT: Final = 100


def _rank(tier: str) -> int:
    return {str(name): rank for name, rank in TIER_RANK.items()}.get(tier, 0)


def owed_cancel_kind(
    replacement_tier: str, replacement_status: str, old: repo.ReplacedSubscription | None
) -> OwedKind | None:
    """What the old subscription is owed now that its replacement is in `replacement_status`; None: not
    yet (the replacement is not far enough along). `done`: nothing, the old one has ended already."""
    if old is None or old.status in ENDED_STATUSES:
        return "done"
    upgrade = _rank(replacement_tier) > _rank(old.tier)
    # An upgrade waits for the first payment; a downgrade's first charge is at the old cycle's end, so
    # Checkout's authentication is the customer's commitment.
    ready_statuses = ("active",) if upgrade else ("authenticated", "active")
    if replacement_status not in ready_statuses:
        return None
    # An old subscription never paid has no cycle to finish.
    return "now" if upgrade or old.status == "created" else "cycle_end"


def owe_replaced_cancel(
    conn: Connection, replacement_id: UUID, replaces_id: UUID, *, tier: str, status: str
) -> bool:
    """In the webhook's transaction: write what the old subscription is owed, once. True when a cancel at
    Razorpay is now owed (to be made after the commit)."""
    kind = owed_cancel_kind(tier, status, repo.replaced_subscription(conn, replaces_id))
    if kind is None:
        return False
    return repo.owe_replaced_cancel(conn, replacement_id, kind) and kind != "done"


def _now() -> datetime:
    return datetime.now(UTC)


def record_cancel_answer(
    conn: Connection,
    *,
    subscription_id: UUID,
    user_id: UUID,
    answer: RazorpaySubscription,
    at_cycle_end: bool,
    metadata: dict[str, Any],
) -> None:
    """Record what Razorpay answered to a cancel (service transaction); the tier is left to the webhooks."""
    cancelled_now = answer.status in ENDED_STATUSES
    subscriptions_repo.record_cancellation(
        conn,
        subscription_id=subscription_id,
        user_id=user_id,
        status=answer.status if answer.status in KNOWN_STATUSES else None,
        at_period_end=at_cycle_end and not cancelled_now,
        canceled_at=(from_epoch(answer.ended_at) or _now()) if cancelled_now else None,
        metadata=metadata,
    )


def cancel_at_razorpay(
    razorpay: RazorpayClient, subscription_id: str, *, at_cycle_end: bool
) -> RazorpaySubscription:
    """Cancel at Razorpay; a refusal because it has ended already counts as done (a retried cancel)."""
    try:
        return razorpay.cancel_subscription(subscription_id, at_cycle_end=at_cycle_end)
    except RazorpayRefusedError:
        current = razorpay.fetch_subscription(subscription_id)
        if current.status in ENDED_STATUSES:
            return current
        raise


def settle_owed_cancels(
    db: Database, razorpay: RazorpayClient, *, replacement_id: UUID | None = None, limit: int = DEFAULT_LIMIT
) -> int:
    """Make the owed cancels of replaced subscriptions at Razorpay (all, or `replacement_id`'s) and record
    them; returns how many are done. A Razorpay failure leaves that one owed for the next try."""
    with db.service_transaction() as conn:
        owed = repo.owed_cancels(conn, limit=limit, replacement_id=replacement_id)
    done = 0
    for item in owed:
        at_cycle_end = item.kind == "cycle_end"
        answer: RazorpaySubscription | None = None
        if not (item.old_status in ENDED_STATUSES or (at_cycle_end and item.old_cancel_at_period_end)):
            try:
                answer = cancel_at_razorpay(razorpay, item.old_provider_subscription_id, at_cycle_end=at_cycle_end)
            except UpstreamError:
                logger.warning(
                    "cancel of a replaced subscription failed; the sweep tries again",
                    extra={"subscription_id": str(item.old_id), "replacement_id": str(item.replacement_id)},
                )
                continue
        with db.service_transaction() as conn:
            if answer is not None:
                record_cancel_answer(
                    conn,
                    subscription_id=item.old_id,
                    user_id=item.user_id,
                    answer=answer,
                    at_cycle_end=at_cycle_end,
                    metadata={
                        "cancel_requested_at": iso_z(_now()),
                        "cancel_at_cycle_end": at_cycle_end,
                        "replaced_by": item.replacement,
                    },
                )
            repo.mark_replaced_cancel_done(conn, item.replacement_id)
        done += 1
        logger.info(
            "replaced subscription cancelled",
            extra={
                "subscription_id": str(item.old_id),
                "replacement_id": str(item.replacement_id),
                "kind": item.kind,
            },
        )
    return done


def cancel_abandoned_replacements(
    db: Database, razorpay: RazorpayClient, *, older_than_seconds: float, limit: int = DEFAULT_LIMIT
) -> int:
    """Cancel at Razorpay every replacement still `created` (Checkout never completed) older than
    `older_than_seconds`, and record it; the subscription it would have replaced is not touched. Razorpay
    is asked first: one whose Checkout was completed meanwhile is left to its webhooks."""
    with db.service_transaction() as conn:
        candidates = repo.abandoned_replacements(conn, older_than_seconds=older_than_seconds, limit=limit)
    cancelled = 0
    for row in candidates:
        try:
            current = razorpay.fetch_subscription(row.provider_subscription_id)
            if current.status == "created":
                answer = cancel_at_razorpay(razorpay, row.provider_subscription_id, at_cycle_end=False)
            elif current.status in ENDED_STATUSES:
                answer = current
            else:
                continue
        except UpstreamError:
            logger.warning(
                "abandoned replacement not cancelled; the sweep tries again",
                extra={"subscription_id": str(row.id)},
            )
            continue
        with db.service_transaction() as conn:
            record_cancel_answer(
                conn,
                subscription_id=row.id,
                user_id=row.user_id,
                answer=answer,
                at_cycle_end=False,
                metadata={"abandoned_at": iso_z(_now())},
            )
        cancelled += 1
        logger.info(
            "abandoned replacement cancelled", extra={"subscription_id": str(row.id), "user_id": str(row.user_id)}
        )
    return cancelled


@dataclass(frozen=True, slots=True)
class ReplacementSweepReport:
    replaced_cancels_settled: int
    abandoned_replacements_cancelled: int
    # Billing is not configured here (no Razorpay keys): nothing was tried.
    replacements_skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_replacements(db: Database, *, razorpay: RazorpayClient | None = None) -> ReplacementSweepReport:
    """The quota-reset sweep's billing part for plan changes: owed cancels first, then abandoned
    replacements (older than `ONEAI_REPLACEMENT_CHECKOUT_HOURS`)."""
    try:
        client = razorpay or get_razorpay_client()
    except UnavailableError:
        return ReplacementSweepReport(0, 0, replacements_skipped=True)
    settled = settle_owed_cancels(db, client)
    abandoned = cancel_abandoned_replacements(
        db, client, older_than_seconds=db.settings.replacement_checkout_hours * 3600
    )
    return ReplacementSweepReport(settled, abandoned)
