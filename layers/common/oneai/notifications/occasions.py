"""From a domain event (EventBridge: `source`, `detail-type`, `detail`) to one email occasion: its kind,
its user, the key that makes it one of a kind, and the numbers its templates show. Events carry ids and
numbers only; the recipient's address comes from the database when the email is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oneai.notifications.kinds import EmailKind

ACCOUNT_SOURCE: Final = "oneai.account"
QUOTA_SOURCE: Final = "oneai.quota"
BILLING_SOURCE: Final = "oneai.billing"
NOTIFICATIONS_SOURCE: Final = "oneai.notifications"
WORKSPACES_SOURCE: Final = "oneai.workspaces"
CREDITS_SOURCE: Final = "oneai.credits"

USER_CREATED: Final = "UserCreated"
QUOTA_WARNING: Final = "QuotaWarning"
PAYMENT_FAILED: Final = "PaymentFailed"
PAYMENT_RECEIVED: Final = "PaymentReceived"
SUBSCRIPTION_ENDED: Final = "SubscriptionEnded"
USAGE_SUMMARY_DUE: Final = "UsageSummaryDue"
WORKSPACE_INVITATION_CREATED: Final = "WorkspaceInvitationCreated"
CREDITS_LOW: Final = "CreditsLow"

# Currencies whose amounts Razorpay counts in whole units (no minor unit); every other has two decimals.
ZERO_DECIMAL_CURRENCIES: Final = frozenset({"JPY", "KRW", "VND", "CLP", "PYG", "UGX", "XAF", "XOF"})
QUOTA_NAMES: Final = {
    "small_messages": "messages to small models",
    "large_messages": "messages to large models",
    "image_generation": "image generations",
}


class UnknownEventError(ValueError):
    """Not an event this function sends email for, or its detail is malformed: retrying cannot help, so
    the record goes to the dead-letter queue, where someone sees it."""


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: UUID


class UserCreatedDetail(_Detail):
    pass


class QuotaWarningDetail(_Detail):
    quota_key: str = Field(min_length=1, max_length=64)
    threshold: Literal[80, 90, 100]
    used: int
    limit: int
    resets_at: datetime
    tier: str


class PaymentFailedDetail(_Detail):
    payment_id: str = Field(min_length=1, max_length=100)
    amount: int | None = None
    currency: str | None = None
    failed_at: datetime
    grace_until: datetime | None = None


class PaymentReceivedDetail(_Detail):
    payment_id: str = Field(min_length=1, max_length=100)
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    tier: str
    period_start: datetime | None = None
    period_end: datetime | None = None


class SubscriptionEndedDetail(_Detail):
    subscription_id: UUID
    tier: str
    status: str
    ended_at: datetime


class UsageSummaryDueDetail(_Detail):
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


class WorkspaceInvitationDetail(_Detail):
    """`user_id` is the inviter's (whose occasion it is); the address and the link are read and derived
    when the email is sent (oneai.workspaces.tokens), never carried by the event."""

    invitation_id: UUID


class CreditsLowDetail(_Detail):
    """`user_id` is the workspace's owner (who pays); one email per downward crossing of the threshold."""

    workspace_id: UUID
    balance: Decimal
    threshold: Decimal
    crossing: int = Field(ge=1)


@dataclass(frozen=True, slots=True)
class Occasion:
    kind: EmailKind
    user_id: UUID
    # With (user, kind): what makes this email one of a kind (the claim's key).
    key: str
    # The template's values, already formatted for people.
    values: dict[str, str]


def when(moment: datetime) -> str:
    """`2026-12-01 00:00 UTC`."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: int | None, currency: str | None) -> str:
    """Razorpay's minor units as `INR 499.00`."""
    if amount is None:
        return "the amount due"
    code = (currency or "INR").upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return f"{code} {amount:,}"
    return f"{code} {Decimal(amount) / 100:,.2f}"


def _period(start: datetime | None, end: datetime | None) -> str:
    if start is not None and end is not None:
        return f"{start.astimezone(UTC):%Y-%m-%d} to {end.astimezone(UTC):%Y-%m-%d}"
    if end is not None:
        return f"until {end.astimezone(UTC):%Y-%m-%d}"
    return "the current period"


def _month_name(month: str) -> str:
    return datetime.strptime(month, "%Y-%m").strftime("%B %Y")


def occasion_of(event: dict[str, Any]) -> Occasion:
    """The email occasion of an EventBridge event, or UnknownEventError."""
    source, detail_type, detail = event.get("source"), event.get("detail-type"), event.get("detail")
    if not isinstance(detail, dict):
        raise UnknownEventError(f"{source}/{detail_type}: the event has no detail object")
    try:
        if (source, detail_type) == (WORKSPACES_SOURCE, WORKSPACE_INVITATION_CREATED):
            invitation = WorkspaceInvitationDetail.model_validate(detail)
            return Occasion("workspace_invitation", invitation.user_id, str(invitation.invitation_id), {})
        if (source, detail_type) == (CREDITS_SOURCE, CREDITS_LOW):
            return _credits_low(detail)
        return _occasion(str(source), str(detail_type), detail)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        raise UnknownEventError(f"{source}/{detail_type}: malformed detail ({', '.join(fields)})") from None


def _credits_low(detail: dict[str, Any]) -> Occasion:
    low = CreditsLowDetail.model_validate(detail)
    values = {
        "workspace_id": str(low.workspace_id),
        "balance": f"{low.balance:,.2f}",
        "threshold": f"{low.threshold:,.2f}",
    }
    # One email per crossing of the threshold (the crossing's number comes from the database).
    return Occasion("credits_low", low.user_id, f"{low.workspace_id}:{low.crossing}", values)


def _occasion(source: str, detail_type: str, detail: dict[str, Any]) -> Occasion:
    kind = (source, detail_type)
    if kind == (ACCOUNT_SOURCE, USER_CREATED):
        created = UserCreatedDetail.model_validate(detail)
        return Occasion("welcome", created.user_id, "welcome", {})
    if kind == (QUOTA_SOURCE, QUOTA_WARNING):
        warning = QuotaWarningDetail.model_validate(detail)
        # One per threshold per reset window: the window is named by its end.
        key = f"{warning.quota_key}:{iso(warning.resets_at)}:{warning.threshold}"
        values = {
            "quota_key": warning.quota_key,
            "quota_name": QUOTA_NAMES.get(warning.quota_key, warning.quota_key.replace("_", " ")),
            "threshold": str(warning.threshold),
            "used": str(warning.used),
            "limit": str(warning.limit),
            "resets_at": when(warning.resets_at),
            "tier": warning.tier,
        }
        return Occasion("quota_warning", warning.user_id, key, values)
    if kind == (BILLING_SOURCE, PAYMENT_FAILED):
        failed = PaymentFailedDetail.model_validate(detail)
        grace = when(failed.grace_until) if failed.grace_until is not None else "the end of the grace period"
        values = {
            "amount": money(failed.amount, failed.currency),
            "failed_at": when(failed.failed_at),
            "grace_until": grace,
        }
        return Occasion("payment_failed", failed.user_id, failed.payment_id, values)
    if kind == (BILLING_SOURCE, PAYMENT_RECEIVED):
        paid = PaymentReceivedDetail.model_validate(detail)
        values = {
            "amount": money(paid.amount, paid.currency),
            "tier": paid.tier,
            "period": _period(paid.period_start, paid.period_end),
            "payment_id": paid.payment_id,
        }
        return Occasion("payment_received", paid.user_id, paid.payment_id, values)
    if kind == (BILLING_SOURCE, SUBSCRIPTION_ENDED):
        ended = SubscriptionEndedDetail.model_validate(detail)
        values = {"tier": ended.tier, "ended_at": when(ended.ended_at)}
        return Occasion("subscription_ended", ended.user_id, str(ended.subscription_id), values)
    if kind == (NOTIFICATIONS_SOURCE, USAGE_SUMMARY_DUE):
        summary = UsageSummaryDueDetail.model_validate(detail)
        values = {
            "month": _month_name(summary.month),
            "messages": f"{summary.messages:,}",
            "total_tokens": f"{summary.prompt_tokens + summary.completion_tokens:,}",
            "cost": f"USD {summary.cost:.4f}",
        }
        return Occasion("usage_summary", summary.user_id, summary.month, values)
    raise UnknownEventError(f"no email is sent for {source}/{detail_type}")
