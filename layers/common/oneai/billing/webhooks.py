"""Razorpay webhooks: verify the signature, then apply the event once, in one service transaction.

    result = handle_webhook(db, body=raw_bytes, signature=headers.get("x-razorpay-signature"),
                            event_id=headers.get("x-razorpay-event-id"))

**Signature.** HMAC-SHA256 of the exact raw body (bytes, before any decoding of the JSON), hex, keyed
with the webhook secret; during a rotation the previous secret is accepted too. Compared in constant
time with each configured secret. A bad or missing signature is a 400 and nothing is written.

**Once.** The event id (`x-razorpay-event-id`; without it, a digest of the body, which a redelivery
repeats byte for byte) is inserted into `processed_webhook_events` first, in the transaction that applies
the event: a repeat finds it and changes nothing; concurrent deliveries of one event queue on its primary
key and all but the first find it recorded.

**Order.** Razorpay delivers at least once and in any order. Each subscription keeps the key of the last
event applied to its status, `(last_event_at, last_event_rank)`: the event's `created_at` and its rank in
the life cycle, which orders events of the same second (`EVENT_RANK`). An event changes the status (and
plan, period, grace) only when its key is newer; `cancelled` and `completed` are terminal, nothing
changes the status after them. Whatever its key, `activated`, `charged` and `resumed` move `paid_until`
forward to the period's end (and `invoice.paid` to the invoice's billing end): it never moves back.

**Entitlement** is derived from the subscription's state after the event, not from the event alone
(`entitles`): the tier is granted while the status is `active`, `pending` until `grace_until` (set to the
event's time + `grace_period_days` when entering `pending`; ended by the quota-reset sweep,
`oneai.billing.grace`), or `cancelled` at the end of the period (`cancel_at_period_end`) until
`paid_until` (ended by `oneai.billing.period_end`); otherwise free. The user's tier is the highest tier
any of their subscriptions grants (free when none), changed through `change_tier`, the one quota-
assignment service, in the same transaction (a subscription that grants nothing any more takes away
only the tier that came from it: a user on another tier is left alone), with the reason:
- higher tier: `new_subscription` for this subscription's first grant, `upgrade` afterwards;
- lower tier because this subscription stopped granting: `payment_failure` (halted, or pending past its
  grace), `cancellation` (cancelled, completed), `downgrade` (paused, or anything else);
- lower tier while it still grants (a plan change): `downgrade`.
The user's `subscription_status` follows the subscription that decides their tier.

**Adoption.** A subscription we have not stored yet whose `notes.user_id` names one of our users is
stored (tier from the plan, else `notes.tier`) and the event applied to it; an unknown subscription that
is not ours is only recorded.

**Plan changes by replacement** (`oneai.billing.replacement`): when the event takes a subscription that
replaces another far enough (`active` for an upgrade, `authenticated` for a downgrade), the cancel the old
one is owed is written on this subscription's row in the same transaction, and made at Razorpay after the
commit (best effort: the quota-reset sweep makes it when Razorpay fails here).

**Payment failures** publish `oneai.billing` / `PaymentFailed` on EventBridge after the commit (best
effort: a failure to publish never fails the webhook), with no card data, and with `grace_until`: the end
of the subscription's grace period when it is in one, else the failure's time + `grace_period_days` (the
grace period a `subscription.pending` for this failure starts). Likewise `PaymentReceived` for an applied
`subscription.charged` (amount, currency, the period paid for) and `SubscriptionEnded` when a subscription
stops granting its tier to its user (`oneai.billing.notices`).

**Credits orders** (`payment.captured`, `order.paid`): the workspace's balance grows by the order's amount
once, in the same transaction, whatever the order of arrival (`oneai_private.apply_credit_purchase`).
A `refund.processed` of such a payment debits the refunded amount once per refund id
(`oneai_private.apply_credit_refund`); when it arrives before the purchase was credited, the refund's
captured payment (it names its order) credits the purchase first, so the later `payment.captured` /
`order.paid` find it credited. A refund of any other payment (a subscription's) is only recorded.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from oneai.billing import notices
from oneai.billing.plans import tier_for_plan
from oneai.billing.razorpay_client import get_razorpay_client
from oneai.billing.razorpay_events import (
    INVOICE_PAID,
    ORDER_EVENTS,
    PAYMENT_FAILED,
    REFUND_PROCESSED,
    SUBSCRIPTION_EVENTS,
    RazorpayEvent,
    SubscriptionEntity,
    from_unix,
    parse_event,
)
from oneai.billing.replacement import owe_replaced_cancel, settle_owed_cancels
from oneai.billing.tier_change import TIER_RANK, ChangeReason, UserSubscriptionStatus, change_tier
from oneai.config import Settings
from oneai.credits import service as credits_service
from oneai.db import credits as credits_repo
from oneai.db import webhooks as repo
from oneai.db.charges import record_charge
from oneai.db.connection import Connection, Database
from oneai.errors import BadRequestError, UnavailableError
from oneai.events import DomainEvent, EventPublisher, get_publisher
from oneai.logging import logger
from oneai.quota.tiers import TierName

EVENT_SOURCE: Final = "oneai.billing"
PAYMENT_FAILED_DETAIL_TYPE: Final = "PaymentFailed"
MAX_EVENT_ID_LENGTH: Final = 200
# The cancel a replacement's activation owes is made after the commit, within Razorpay's 5 s for the
# answer: each Razorpay call gets at most this long (what does not finish is left to the sweep).
REPLACED_CANCEL_TIMEOUT_SECONDS: Final = 1.5
SUBSCRIPTION_CHARGED: Final = "subscription.charged"

# Breaks ties between events of the same second, in life-cycle order.
EVENT_RANK: Final[dict[str, int]] = {
    "subscription.authenticated": 0,
    "subscription.activated": 1,
    "subscription.resumed": 2,
    "subscription.charged": 3,
    "subscription.updated": 4,
    "subscription.pending": 5,
    "subscription.paused": 6,
    "subscription.halted": 7,
    "subscription.cancelled": 8,
    "subscription.completed": 8,
}
# The status each event leaves the subscription in; `updated` takes the entity's own status.
EVENT_STATUS: Final[dict[str, str]] = {
    "subscription.authenticated": "authenticated",
    "subscription.activated": "active",
    "subscription.resumed": "active",
    "subscription.charged": "active",
    "subscription.pending": "pending",
    "subscription.paused": "paused",
    "subscription.halted": "halted",
    "subscription.cancelled": "cancelled",
    "subscription.completed": "completed",
}
# Events whose subscription entity says the current period is paid for.
PAID_THROUGH_EVENTS: Final = frozenset({"subscription.activated", "subscription.charged", "subscription.resumed"})
SUBSCRIPTION_STATUSES: Final = frozenset(
    {"created", "authenticated", "active", "pending", "halted", "cancelled", "completed", "expired", "paused"}
)
TERMINAL_STATUSES: Final = frozenset({"cancelled", "completed"})
# An admin's sync of a subscription from Razorpay (`apply_fetched_subscription`): its status ranks as the
# latest event that leads to it.
SYNC_EVENT: Final = "subscription.sync"
STATUS_RANK: Final[dict[str, int]] = {
    status: max(EVENT_RANK[event] for event, leads_to in EVENT_STATUS.items() if leads_to == status)
    for status in set(EVENT_STATUS.values())
}
PAID_TIERS: Final[frozenset[str]] = frozenset({"pro", "enterprise"})
# The users.subscription_status that a subscription status shows as (others leave it as it is).
USER_STATUS: Final[dict[str, UserSubscriptionStatus]] = {
    "active": "active",
    "pending": "pending",
    "halted": "halted",
    "cancelled": "cancelled",
    "completed": "completed",
}
LOSS_REASON: Final[dict[str, ChangeReason]] = {
    "halted": "payment_failure",
    "pending": "payment_failure",
    "cancelled": "cancellation",
    "completed": "cancellation",
}

Outcome = Literal["applied", "recorded", "duplicate"]


class InvalidSignatureError(BadRequestError):
    default_message = "The webhook signature is missing or does not match"


class WebhookNotConfiguredError(UnavailableError):
    """No webhook secret is configured: nothing can be verified (503, so Razorpay retries)."""

    default_message = "Webhooks are not configured"


# ---------------------------------------------------------------------------------------- signature


def webhook_secrets(settings: Settings) -> list[bytes]:
    """The secrets a signature may be made with: the current one, and the previous one during a rotation."""
    configured = (settings.razorpay_webhook_secret, settings.razorpay_webhook_secret_previous)
    return [s.get_secret_value().encode() for s in configured if s is not None and s.get_secret_value()]


def sign(body: bytes, secret: bytes | str) -> str:
    """The signature Razorpay sends for `body` (hex HMAC-SHA256)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, signature: str | None, secrets: Iterable[bytes]) -> bool:
    """Constant time per secret; every secret is tried, so the time does not say which one matched."""
    if not signature:
        return False
    given = signature.strip().lower().encode("ascii", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret).encode(), given)
    return matched


def verify_signature(body: bytes, signature: str | None, settings: Settings) -> None:
    secrets = webhook_secrets(settings)
    if not secrets:
        raise WebhookNotConfiguredError()
    if not signature_matches(body, signature, secrets):
        raise InvalidSignatureError()


def delivery_id(event_id: str | None, body: bytes) -> str:
    """The event id of a delivery: the header's, else a digest of the exact body (a redelivery repeats it)."""
    if event_id is not None and event_id.strip():
        candidate = event_id.strip()
        if len(candidate) > MAX_EVENT_ID_LENGTH:
            raise BadRequestError("The event id is too long")
        return candidate
    return "sha256:" + hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------------------------------- the rules


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """What the rules read and write of a subscription row."""

    status: str
    plan_id: str
    tier: str
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    paid_until: datetime | None = None
    grace_until: datetime | None = None
    last_event_at: datetime | None = None
    last_event_rank: int | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    access_ended_at: datetime | None = None
    provider_customer_id: str | None = None

    def columns(self) -> dict[str, Any]:
        """The columns webhooks write (`cancel_at_period_end` is the billing API's)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cancel_at_period_end"}


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """What one event says about a subscription. `rank` None: the event changes no status."""

    event_type: str
    occurred_at: datetime
    rank: int | None = None
    status: str | None = None
    plan_id: str | None = None
    tier: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    paid_through: datetime | None = None
    customer_id: str | None = None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def is_newer(state: SubscriptionState, occurred_at: datetime, rank: int) -> bool:
    """The event's key (time, rank) is after the last applied one."""
    if state.last_event_at is None:
        return True
    last_rank = -1 if state.last_event_rank is None else state.last_event_rank
    return (occurred_at, rank) > (state.last_event_at, last_rank)


def entitles(state: SubscriptionState, now: datetime) -> bool:
    """The subscription grants its tier at `now` (the Python twin of `oneai.db.webhooks.entitles_sql`)."""
    if state.status == "active":
        return True
    if state.status == "pending":
        return state.grace_until is not None and state.grace_until > now
    if state.status == "cancelled":
        return state.cancel_at_period_end and state.paid_until is not None and state.paid_until > now
    return False


def apply_change(
    state: SubscriptionState, change: SubscriptionChange, *, now: datetime, grace_period: timedelta
) -> tuple[SubscriptionState, bool]:
    """The subscription after `change`, and whether the change was newer (its status applied)."""
    new = replace(
        state,
        paid_until=_later(state.paid_until, change.paid_through),
        provider_customer_id=state.provider_customer_id or change.customer_id,
    )
    newer = (
        change.rank is not None
        and state.status not in TERMINAL_STATUSES
        and is_newer(state, change.occurred_at, change.rank)
    )
    if newer:
        status = change.status or state.status
        grace_until = None
        if status == "pending":
            entering = state.status != "pending" or state.grace_until is None
            grace_until = change.occurred_at + grace_period if entering else state.grace_until
        new = replace(
            new,
            status=status,
            plan_id=change.plan_id or state.plan_id,
            tier=change.tier or state.tier,
            current_period_start=change.period_start or state.current_period_start,
            current_period_end=change.period_end or state.current_period_end,
            grace_until=grace_until,
            last_event_at=change.occurred_at,
            last_event_rank=change.rank,
            canceled_at=state.canceled_at or (change.occurred_at if status == "cancelled" else None),
        )
    # A subscription that ended stops granting once; the period-end sweep looks for those that have not.
    ended = new.status in TERMINAL_STATUSES and not entitles(new, now)
    new = replace(new, access_ended_at=(new.access_ended_at or now) if ended else None)
    return new, newer


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier: TierName
    # This subscription decides the user's tier (and so their subscription_status).
    decides: bool


_TIER_RANK: Final[dict[str, int]] = {str(tier): rank for tier, rank in TIER_RANK.items()}


def _rank(tier: str) -> int:
    return _TIER_RANK.get(tier, 0)


def decide_tier(
    subscription_tier: str, entitled: bool, other_tiers: Sequence[str], user_tier: str
) -> TierDecision | None:
    """The user's tier after a subscription's change: the highest any of their subscriptions grants, free
    when none does. None: leave the user alone, because this subscription no longer grants anything and
    the user's tier did not come from it (a tier given some other way is not a subscription's to take)."""
    best_other = max(other_tiers, key=_rank, default="free")
    if entitled:
        if _rank(subscription_tier) >= _rank(best_other):
            return TierDecision(_as_tier(subscription_tier), decides=True)
        return TierDecision(_as_tier(best_other), decides=False)
    if user_tier not in (subscription_tier, "free"):
        return None
    if best_other != "free":
        return TierDecision(_as_tier(best_other), decides=False)
    return TierDecision("free", decides=True)


def _as_tier(value: str) -> TierName:
    for tier in TIER_RANK:
        if tier == value:
            return tier
    raise ValueError(f"unknown tier {value!r}")


def change_reason(*, old_tier: str, new_tier: str, entitled: bool, status: str, first_grant: bool) -> ChangeReason:
    if _rank(new_tier) > _rank(old_tier):
        return "new_subscription" if old_tier == "free" and first_grant else "upgrade"
    if not entitled:
        return LOSS_REASON.get(status, "downgrade")
    return "downgrade"


# ---------------------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    event_type: str
    outcome: Outcome
    provider_subscription_id: str | None = None
    user_id: UUID | None = None
    status: str | None = None
    tier: str | None = None
    tier_changed: bool = False
    # Our subscription row the event applied to.
    subscription_id: UUID | None = None
    # The PaymentFailed detail to publish once committed.
    notification: dict[str, Any] | None = field(default=None, repr=False)
    published: bool = False
    # This subscription replaces another, which is now owed a cancel at Razorpay (made after the commit).
    owed_cancel_of: UUID | None = None
    # Other domain events to publish once committed (PaymentReceived, SubscriptionEnded).
    events: tuple[DomainEvent, ...] = field(default=(), repr=False)
    # A credits refund that took the workspace's balance under its low-balance threshold.
    low_balance: credits_service.LowBalance | None = field(default=None, repr=False)

    def log_fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "outcome": self.outcome,
            "provider_subscription_id": self.provider_subscription_id,
            "user_id": str(self.user_id) if self.user_id else None,
            "subscription_status": self.status,
            "tier": self.tier,
            "tier_changed": self.tier_changed,
        }


def handle_webhook(
    db: Database,
    *,
    body: bytes,
    signature: str | None,
    event_id: str | None,
    publisher: EventPublisher | None = None,
) -> WebhookResult:
    """Verify, then record and apply the event in one service transaction; publish after the commit.
    Raises InvalidSignatureError / BadRequestError (400, nothing written), UnavailableError (503)."""
    settings = db.settings
    verify_signature(body, signature, settings)
    event = parse_event(body)
    identifier = delivery_id(event_id, body)
    with db.service_transaction() as conn:
        result = apply_event(conn, settings, event, identifier)
    if result.notification is not None:
        result = replace(result, published=_publish(publisher, result.notification))
    if result.owed_cancel_of is not None:
        _settle_replaced_cancel(db, result.owed_cancel_of)
    if result.events:
        _publish_events(publisher, result.events)
    credits_service.announce_low_balance(publisher or get_publisher(), result.low_balance)
    return result


def _settle_replaced_cancel(db: Database, replacement_id: UUID) -> None:
    """Best effort: the event is applied and Razorpay must get its 200; the sweep retries what fails."""
    try:
        razorpay = get_razorpay_client().bounded(REPLACED_CANCEL_TIMEOUT_SECONDS)
        settle_owed_cancels(db, razorpay, replacement_id=replacement_id)
    except Exception as exc:
        logger.warning(
            "replaced subscription not cancelled now; the sweep will",
            extra={"replacement_id": str(replacement_id), "error_type": type(exc).__name__},
        )


def _publish_events(publisher: EventPublisher | None, events: tuple[DomainEvent, ...]) -> None:
    try:
        (publisher or get_publisher()).publish_all(events)
    except Exception as exc:  # best effort, as above
        logger.warning("billing events not published", extra={"error_type": type(exc).__name__})


def _publish(publisher: EventPublisher | None, detail: dict[str, Any]) -> bool:
    try:
        return (publisher or get_publisher()).publish(EVENT_SOURCE, PAYMENT_FAILED_DETAIL_TYPE, detail)
    except Exception as exc:  # best effort: the event is applied, Razorpay must get its 200
        logger.warning("PaymentFailed not published", extra={"error_type": type(exc).__name__})
        return False


def _subscription_id_of(event: RazorpayEvent) -> str | None:
    if event.subscription is not None:
        return event.subscription.id
    if event.invoice is not None and event.invoice.subscription_id:
        return event.invoice.subscription_id
    if event.payment is not None:
        return event.payment.subscription_id
    return None


def apply_event(conn: Connection, settings: Settings, event: RazorpayEvent, event_id: str) -> WebhookResult:
    """Record `event_id` and apply the event's effect, in the caller's service transaction."""
    provider_subscription_id = _subscription_id_of(event)
    first = repo.record_event(
        conn, event_id=event_id, event_type=event.event, provider_subscription_id=provider_subscription_id
    )
    result = WebhookResult(event_id, event.event, "recorded", provider_subscription_id)
    if not first:
        return replace(result, outcome="duplicate")
    if event.unreadable:
        logger.warning(
            "unreadable entities in a webhook", extra={"event_type": event.event, "entities": event.unreadable}
        )
    occurred_at = event.occurred_at or datetime.now(UTC)
    if event.event in SUBSCRIPTION_EVENTS and event.subscription is not None:
        change = subscription_change(settings, event.event, event.subscription, occurred_at)
        result = _apply_change(conn, settings, result, change, adopt_from=event.subscription)
        _record_charge(conn, event, occurred_at)
        return _with_receipt(result, event, change)
    if event.event == INVOICE_PAID and event.invoice is not None and event.invoice.subscription_id:
        change = SubscriptionChange(event.event, occurred_at, paid_through=from_unix(event.invoice.billing_end))
        return _apply_change(conn, settings, result, change, adopt_from=None)
    if event.event == PAYMENT_FAILED and event.payment is not None:
        return _payment_failed(conn, settings, result, event, occurred_at)
    if event.event in ORDER_EVENTS:
        return _credits_order_paid(conn, result, event)
    if event.event == REFUND_PROCESSED:
        result = _credits_refunded(conn, result, event)
    return result


def _credits_refunded(conn: Connection, result: WebhookResult, event: RazorpayEvent) -> WebhookResult:
    """`refund.processed` of a payment that bought credits: the refunded amount is debited once per refund
    id (never below zero; the rest is the row's shortfall). A refund arriving before the purchase's own
    events credits the purchase first from the refund's captured payment (an auto-refund of a payment never
    captured credits and debits nothing). Anything else (a subscription's payment) is only recorded."""
    refund, payment = event.refund, event.payment
    if refund is None or not refund.payment_id or refund.amount is None or refund.amount <= 0:
        return result
    if refund.status is not None and refund.status != "processed":
        return result
    if payment is not None and payment.id == refund.payment_id and payment.order_id and payment.captured:
        credits_repo.apply_purchase(
            conn,
            order_id=payment.order_id,
            payment_id=payment.id,
            amount_paise=payment.amount,
            currency=payment.currency,
        )
    answer = credits_service.apply_refund(
        conn,
        refund_id=refund.id,
        payment_id=refund.payment_id,
        amount_paise=refund.amount,
        currency=refund.currency,
    )
    outcome = answer.get("outcome")
    if outcome != "not_ours":
        logger.info(
            "credits refund",
            extra={
                "event_id": result.event_id,
                "refund_id": refund.id,
                "outcome": outcome,
                "workspace_id": answer.get("workspace_id"),
            },
        )
    if outcome != "refunded":
        return result
    return replace(result, outcome="applied", low_balance=credits_service.low_balance_of(answer))


def _credits_order_paid(conn: Connection, result: WebhookResult, event: RazorpayEvent) -> WebhookResult:
    """`payment.captured` / `order.paid` of a workspace's credits order: its balance grows once, whichever
    of the two arrives first and however often (oneai_private.apply_credit_purchase locks the order row).
    A payment of anything else (a subscription's) is only recorded."""
    payment = event.payment
    order_id = event.order.id if event.order is not None else payment.order_id if payment is not None else None
    if payment is None or not order_id:
        return result
    if event.event == "payment.captured" and not (payment.captured or payment.status == "captured"):
        return result
    answer = credits_repo.apply_purchase(
        conn, order_id=order_id, payment_id=payment.id, amount_paise=payment.amount, currency=payment.currency
    )
    outcome = answer.get("outcome")
    fields = {"event_id": result.event_id, "order_id": order_id, "outcome": outcome}
    if outcome == "amount_mismatch":
        logger.warning("credits order paid with another amount or currency: not credited", extra=fields)
    elif outcome in ("credited", "already_credited"):
        logger.info("credits order", extra={**fields, "workspace_id": answer.get("workspace_id")})
    return replace(result, outcome="applied") if outcome == "credited" else result


def _record_charge(conn: Connection, event: RazorpayEvent, occurred_at: datetime) -> None:
    """A `subscription.charged` of one of our subscriptions: its payment is revenue (admin analytics)."""
    payment, subscription = event.payment, event.subscription
    if event.event != SUBSCRIPTION_CHARGED or payment is None or subscription is None or payment.amount is None:
        return
    record_charge(
        conn,
        provider_subscription_id=subscription.id,
        payment_id=payment.id,
        amount=payment.amount,
        currency=(payment.currency or "").upper(),
        charged_at=from_unix(payment.created_at) or occurred_at,
    )


def apply_fetched_subscription(
    conn: Connection, settings: Settings, entity: SubscriptionEntity, *, fetched_at: datetime, source_id: str
) -> WebhookResult:
    """Apply what Razorpay says a subscription is now (an admin's sync) by the same rules as its webhooks:
    the entity's status as an event at `fetched_at`, ranked like the event that leads to that status; an
    active subscription is paid through its current period. A status without such an event (`created`,
    `expired`) changes nothing but the period. Not one of ours: nothing is applied (outcome `recorded`)."""
    status = entity.status if entity.status in SUBSCRIPTION_STATUSES else None
    tier = tier_for_plan(settings, entity.plan_id)
    change = SubscriptionChange(
        event_type=SYNC_EVENT,
        occurred_at=fetched_at,
        rank=STATUS_RANK.get(status or ""),
        status=status,
        plan_id=entity.plan_id,
        tier=tier if tier in PAID_TIERS else None,
        period_start=from_unix(entity.current_start),
        period_end=from_unix(entity.current_end),
        paid_through=from_unix(entity.current_end) if status == "active" else None,
        customer_id=entity.customer_id,
    )
    result = WebhookResult(source_id, SYNC_EVENT, "recorded", entity.id)
    return _apply_change(conn, settings, result, change, adopt_from=None)


def _with_receipt(result: WebhookResult, event: RazorpayEvent, change: SubscriptionChange) -> WebhookResult:
    """An applied `subscription.charged` with its payment: the receipt's event."""
    payment = event.payment
    if (
        event.event != SUBSCRIPTION_CHARGED
        or result.outcome != "applied"
        or result.user_id is None
        or payment is None
        or payment.amount is None
        or not payment.currency
    ):
        return result
    receipt = notices.payment_received(
        user_id=result.user_id,
        subscription_id=result.subscription_id,
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        tier=change.tier or result.tier or "",
        period_start=change.period_start,
        period_end=change.period_end,
    )
    return replace(result, events=(*result.events, receipt))


def subscription_change(
    settings: Settings, event_type: str, entity: SubscriptionEntity, occurred_at: datetime
) -> SubscriptionChange:
    status = EVENT_STATUS.get(event_type)
    if status is None and entity.status in SUBSCRIPTION_STATUSES:  # subscription.updated
        status = entity.status
    tier = tier_for_plan(settings, entity.plan_id)
    return SubscriptionChange(
        event_type=event_type,
        occurred_at=occurred_at,
        rank=EVENT_RANK[event_type],
        status=status,
        plan_id=entity.plan_id,
        tier=tier if tier in PAID_TIERS else None,
        period_start=from_unix(entity.current_start),
        period_end=from_unix(entity.current_end),
        paid_through=from_unix(entity.current_end) if event_type in PAID_THROUGH_EVENTS else None,
        customer_id=entity.customer_id,
    )


def _state_of(locked: repo.LockedSubscription) -> SubscriptionState:
    return SubscriptionState(
        status=locked.status,
        plan_id=locked.plan_id,
        tier=locked.tier,
        current_period_start=locked.current_period_start,
        current_period_end=locked.current_period_end,
        paid_until=locked.paid_until,
        grace_until=locked.grace_until,
        last_event_at=locked.last_event_at,
        last_event_rank=locked.last_event_rank,
        cancel_at_period_end=locked.cancel_at_period_end,
        canceled_at=locked.canceled_at,
        access_ended_at=locked.access_ended_at,
        provider_customer_id=locked.provider_customer_id,
    )


def _adopt(
    conn: Connection, result: WebhookResult, change: SubscriptionChange, entity: SubscriptionEntity
) -> repo.LockedSubscription | None:
    user_id = entity.note_user_id
    if user_id is None:
        return None
    tier = change.tier or (entity.note_tier if entity.note_tier in PAID_TIERS else None)
    if tier is None or not entity.plan_id:
        logger.warning(
            "subscription of one of our users with an unknown plan: not adopted", extra=result.log_fields()
        )
        return None
    repo.adopt_subscription(
        conn,
        user_id=user_id,
        provider_subscription_id=entity.id,
        plan_id=entity.plan_id,
        tier=tier,
        customer_id=entity.customer_id,
        metadata={"adopted_from_event": result.event_id},
        replaces=entity.note_replaces,
    )
    return repo.lock_subscription(conn, entity.id)


def _apply_change(
    conn: Connection,
    settings: Settings,
    result: WebhookResult,
    change: SubscriptionChange,
    *,
    adopt_from: SubscriptionEntity | None,
) -> WebhookResult:
    assert result.provider_subscription_id is not None
    locked = repo.lock_subscription(conn, result.provider_subscription_id)
    if locked is None and adopt_from is not None:
        locked = _adopt(conn, result, change, adopt_from)
    if locked is None:
        return result  # not one of ours: recorded only

    before = _state_of(locked)
    after, _ = apply_change(
        before, change, now=locked.now, grace_period=timedelta(days=settings.grace_period_days)
    )
    if after != before:
        repo.save_subscription(conn, locked.id, after.columns())
    owed_cancel_of: UUID | None = None
    if locked.replaces_subscription_id is not None and locked.replaced_cancel is None:
        owes = owe_replaced_cancel(
            conn, locked.id, locked.replaces_subscription_id, tier=after.tier, status=after.status
        )
        owed_cancel_of = locked.id if owes else None

    entitled = entitles(after, locked.now)
    decision = decide_tier(after.tier, entitled, locked.other_tiers, locked.user_tier)
    result = replace(result, subscription_id=locked.id)
    # The user lost this subscription's tier (not: a tier that came from elsewhere, or a replacement).
    if (
        entitles(before, locked.now)
        and not entitled
        and decision is not None
        and notices.loses_tier(after.tier, decision.tier)
    ):
        ended = notices.subscription_ended(
            user_id=locked.user_id,
            subscription_id=locked.id,
            tier=after.tier,
            status=after.status,
            ended_at=locked.now,
        )
        result = replace(result, events=(*result.events, ended))
    if decision is None:
        return replace(
            result, outcome="applied", user_id=locked.user_id, status=after.status, owed_cancel_of=owed_cancel_of
        )
    user_status = USER_STATUS.get(after.status) if decision.decides else None
    changed = False
    if decision.tier != locked.user_tier:
        reason = change_reason(
            old_tier=locked.user_tier,
            new_tier=decision.tier,
            entitled=entitled,
            status=after.status,
            first_grant=not locked.has_history,
        )
        changed = change_tier(
            conn,
            user_id=locked.user_id,
            new_tier=decision.tier,
            reason=reason,
            subscription_id=locked.id,
            subscription_status=user_status,
            metadata={
                "event_id": result.event_id,
                "event_type": change.event_type,
                "provider_subscription_id": result.provider_subscription_id,
                "subscription_status": after.status,
            },
        )
    elif user_status is not None and user_status != locked.user_status:
        repo.set_user_status(conn, locked.user_id, user_status)
    return replace(
        result,
        outcome="applied",
        user_id=locked.user_id,
        status=after.status,
        tier=decision.tier,
        tier_changed=changed,
        owed_cancel_of=owed_cancel_of,
    )


def _payment_failed(
    conn: Connection, settings: Settings, result: WebhookResult, event: RazorpayEvent, occurred_at: datetime
) -> WebhookResult:
    payment = event.payment
    assert payment is not None
    subscription = repo.find_subscription_of_payment(
        conn, provider_subscription_id=payment.subscription_id, customer_id=payment.customer_id
    )
    user_id = subscription.user_id if subscription is not None else None
    if user_id is None and payment.note_user_id is not None and repo.user_exists(conn, payment.note_user_id):
        user_id = payment.note_user_id
    if user_id is None:
        return result  # a payment of someone we do not know: recorded only
    provider_subscription_id = subscription.provider_subscription_id if subscription else None
    if provider_subscription_id and provider_subscription_id != result.provider_subscription_id:
        repo.set_event_subscription(conn, result.event_id, provider_subscription_id)
    grace_until = repo.grace_until_of(conn, subscription.id) if subscription else None
    if grace_until is None or grace_until <= occurred_at:
        grace_until = occurred_at + timedelta(days=settings.grace_period_days)
    detail = {
        "user_id": str(user_id),
        "subscription_id": str(subscription.id) if subscription else None,
        "provider_subscription_id": provider_subscription_id,
        "payment_id": payment.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": payment.method,
        "error_code": payment.error_code or None,
        "error_description": payment.error_description or None,
        "error_reason": payment.error_reason or None,
        "failed_at": occurred_at.isoformat(),
        "grace_until": grace_until.isoformat(),
        "event_id": result.event_id,
    }
    return replace(
        result,
        outcome="applied",
        provider_subscription_id=provider_subscription_id,
        user_id=user_id,
        notification=detail,
    )
