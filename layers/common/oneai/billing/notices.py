"""The billing domain events the notifications function emails about (ids and numbers only, never the
payment body): `PaymentReceived` (`subscription.charged`), `SubscriptionEnded` (a subscription stopped
granting its tier to its user: a webhook, the grace-period sweep or the paid-period sweep). Built inside
the transaction that decides them, published after it commits (`publish_after_commit`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from oneai.billing.tier_change import TIER_RANK
from oneai.events import DomainEvent, get_publisher
from oneai.logging import logger

SOURCE: Final = "oneai.billing"
PAYMENT_RECEIVED: Final = "PaymentReceived"
SUBSCRIPTION_ENDED: Final = "SubscriptionEnded"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def payment_received(
    *,
    user_id: UUID,
    subscription_id: UUID | None,
    payment_id: str,
    amount: int,
    currency: str,
    tier: str,
    period_start: datetime | None,
    period_end: datetime | None,
) -> DomainEvent:
    detail = {
        "user_id": str(user_id),
        "subscription_id": str(subscription_id) if subscription_id else None,
        "payment_id": payment_id,
        # Razorpay's minor units (paise for INR), as in its payment entity.
        "amount": amount,
        "currency": currency,
        "tier": tier,
        "period_start": _iso(period_start),
        "period_end": _iso(period_end),
    }
    return DomainEvent(SOURCE, PAYMENT_RECEIVED, detail)


def loses_tier(ended_tier: str, tier_now: str) -> bool:
    """The user is left on a lower tier than the subscription that stopped granting: an email is due. Not
    when another subscription keeps them as high or higher (a plan change by replacement, an upgrade)."""
    ranks = {str(tier): rank for tier, rank in TIER_RANK.items()}
    return ranks.get(tier_now, 0) < ranks.get(ended_tier, 0)


def subscription_ended(
    *, user_id: UUID, subscription_id: UUID, tier: str, status: str, ended_at: datetime
) -> DomainEvent:
    detail = {
        "user_id": str(user_id),
        "subscription_id": str(subscription_id),
        "tier": tier,
        "status": status,
        "ended_at": ended_at.isoformat(),
    }
    return DomainEvent(SOURCE, SUBSCRIPTION_ENDED, detail)


def log_and_publish(message: str, extra: dict[str, Any], event: DomainEvent | None) -> None:
    """A sweep's after-commit action for one row: its log line, then its notice if it has one."""
    logger.info(message, extra=extra)
    if event is not None:
        publish_after_commit(event)


def publish_after_commit(event: DomainEvent) -> bool:
    """Best effort: the billing change is committed; a lost notice never undoes it."""
    try:
        return get_publisher().publish_all([event]) == 1
    except Exception as exc:
        logger.warning(
            "billing event not published",
            extra={"detail_type": event.detail_type, "error_type": type(exc).__name__},
        )
        return False
