"""Shapes of the billing routes (docs/api/billing.md): inputs, validated here, and answers. Times are UTC
(`...Z` in JSON); amounts are integers in the smallest unit of their currency, as Razorpay sends them.
`subscription_id` in the Checkout answers is Razorpay's id (`sub_...`), which Checkout needs; `id` in a
subscription is ours."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from oneai.billing.plans import Plan
from oneai.billing.razorpay_client import ScheduleChangeAt
from oneai.quota.tiers import TierName
from oneai.timestamps import UtcTime

# Razorpay ids and signatures are short ASCII; anything longer is not one.
RazorpayValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class PlanList(BaseModel):
    items: list[Plan]
    next_cursor: None = Field(default=None, description="always null: every plan is on the one page")


# ---------------------------------------------------------------- create and verify


class CreateSubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: TierName = Field(description="a purchasable tier of GET /subscription/plans")


class CheckoutSession(BaseModel):
    """What Razorpay Checkout needs: `subscription_id` and `key` (this `razorpay_key_id`)."""

    subscription_id: str = Field(description="Razorpay's subscription id (sub_...)")
    razorpay_key_id: str
    short_url: str | None = Field(description="Razorpay's hosted payment page for this subscription")


class VerifyRequest(BaseModel):
    """The three values Razorpay Checkout hands to its `handler` after a subscription payment."""

    model_config = ConfigDict(extra="forbid")

    razorpay_payment_id: RazorpayValue
    razorpay_subscription_id: RazorpayValue
    razorpay_signature: RazorpayValue


class VerifyResult(BaseModel):
    """The signature matched our subscription. Provisional: the tier is granted by Razorpay's webhooks
    (`subscription.activated`, `subscription.charged`), not by this answer."""

    verified: Literal[True] = True
    subscription_id: str = Field(description="Razorpay's subscription id (sub_...)")
    status: str = Field(description="our subscription's status as the webhooks last set it")


# ---------------------------------------------------------------- cancel and update


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_cycle_end: Annotated[bool, Field(strict=True)] = Field(
        default=True, description="true: keep the paid tier until the current cycle ends; false: cancel now"
    )


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: TierName = Field(description="the purchasable tier to move to")


class UpdateResult(BaseModel):
    """A tier change. `change`: `edited` (Razorpay changed the plan of the subscription itself; nothing to
    pay now), `recreated` (Razorpay refused the plan change: a new subscription was created; open
    Checkout with `subscription_id` and `razorpay_key_id`, exactly as after create) or `reverted` (the
    tier asked for is the one in force: the plan change awaiting Checkout was cancelled; nothing to pay).
    The old subscription keeps running until Razorpay activates the new one; an abandoned Checkout
    changes nothing."""

    change: Literal["edited", "recreated", "reverted"]
    tier: TierName
    schedule_change_at: ScheduleChangeAt = Field(description="now for an upgrade, cycle_end for a downgrade")
    checkout_required: bool
    subscription_id: str = Field(description="Razorpay's id of the subscription that carries the new tier")
    razorpay_key_id: str
    short_url: str | None


# ---------------------------------------------------------------- reading


class ScheduledChange(BaseModel):
    tier: str | None
    plan_id: str
    at: UtcTime | None


class SubscriptionView(BaseModel):
    id: UUID
    razorpay_subscription_id: str
    tier: str
    plan_id: str
    status: str
    current_period_start: UtcTime | None
    current_period_end: UtcTime | None
    paid_until: UtcTime | None
    grace_until: UtcTime | None
    cancel_at_period_end: bool
    canceled_at: UtcTime | None
    checkout_verified_at: UtcTime | None
    scheduled_change: ScheduledChange | None
    created_at: UtcTime
    updated_at: UtcTime


class CancelResult(BaseModel):
    """The subscription in force as Razorpay's answer left it, and the plan change awaiting activation
    that was cancelled with it (now), or null."""

    subscription: SubscriptionView
    replacement: SubscriptionView | None = None


class HistoryEntry(BaseModel):
    id: UUID
    subscription_id: UUID | None
    old_tier: str | None
    new_tier: str
    change_reason: str
    changed_at: UtcTime


class CurrentSubscription(BaseModel):
    """The subscription in force (your newest live one: created, authenticated, active or pending; null
    without one), a plan change's new subscription while it awaits Razorpay's activation (`replacement`,
    else null), and your tier changes, newest first."""

    subscription: SubscriptionView | None
    replacement: SubscriptionView | None
    history: list[HistoryEntry]


class Invoice(BaseModel):
    id: str
    amount: int
    currency: str
    status: str
    issued_at: UtcTime | None
    paid_at: UtcTime | None
    short_url: str | None


class InvoiceList(BaseModel):
    items: list[Invoice]
    next_cursor: str | None = Field(default=None, description="the next page's cursor; null on the last page")


class PaymentMethodPortal(BaseModel):
    """Razorpay's hosted page of your live subscription, where you authenticate a new card or mandate."""

    url: str
