"""The credits routes' bodies and answers (API.md "Credits"). Money is a decimal string: INR balances with
at least cents (`"0.00"`, `"12.5025"`), USD costs exact (`"0.000123"`)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from oneai.money import balance_decimal, plain_decimal
from oneai.timestamps import IsoDateTime, UtcTime, require_ordered

CURRENCY: Final = "INR"
TransactionType = Literal["purchase", "usage", "refund", "grant", "adjustment"]
UsageGroup = Literal["chatbot", "model", "day", "provider_key"]
# Rupees with at most two decimals (a purchase is whole paise).
AMOUNT_PATTERN: Final = re.compile(r"^\d{1,9}(\.\d{1,2})?$")

Inr = Annotated[Decimal, PlainSerializer(balance_decimal, return_type=str)]
Exact = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str)]


def parse_amount(value: Any) -> Decimal:
    """A purchase or grant amount: a decimal string (or a whole number) of rupees with at most two decimals,
    greater than zero. Raises ValueError with what is wrong."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "500.00"')
    text = str(value).strip()
    if not AMOUNT_PATTERN.fullmatch(text):
        raise ValueError('must be a decimal string of rupees with at most two decimals, such as "500.00"')
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError("not a decimal") from None
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return amount


class Credits(BaseModel):
    """`GET /workspaces/{id}/credits`."""

    balance: Inr = Field(description="INR, a decimal string")
    currency: Literal["INR"] = CURRENCY
    low_balance_threshold: Inr = Field(description="under it, the owner gets one email per crossing")


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(description='INR as a decimal string, e.g. "500.00"')]

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Decimal:
        return parse_amount(value)


class CheckoutPrefill(BaseModel):
    email: str | None = None
    name: str | None = None


class CreditsCheckout(BaseModel):
    """A Razorpay Order and what Checkout needs to take its payment (`key` = `razorpay_key_id`,
    `order_id`, `amount` in paise, `currency`, `name`, `description`, `prefill`)."""

    order_id: str
    razorpay_key_id: str
    amount: int = Field(description="in paise, as Razorpay counts it")
    currency: Literal["INR"] = CURRENCY
    credits: Inr = Field(description="what the balance grows by once Razorpay says the order is paid")
    name: str
    description: str
    prefill: CheckoutPrefill


GrantReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(description="INR as a decimal string")]
    reason: GrantReason

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Decimal:
        return parse_amount(value)


def parse_signed_amount(value: Any) -> Decimal:
    """An adjustment: like `parse_amount`, with an optional leading `-` (a debit)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "500.00" or "-20.50"')
    text = str(value).strip()
    negative = text.startswith("-")
    amount = parse_amount(text[1:] if negative else text)
    return -amount if negative else amount


class AdjustRequest(BaseModel):
    """`POST /admin/workspaces/{id}/credits/adjust`: a signed, non-zero amount (a negative one at most what
    the balance has beyond the running replies' holds) with its reason."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(description='signed INR as a decimal string, e.g. "-20.50"; not zero')]
    reason: GrantReason

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Decimal:
        return parse_signed_amount(value)


class CreditTransaction(BaseModel):
    id: UUID
    type: TransactionType
    amount: Inr = Field(description="signed: what the balance gained (> 0) or lost (< 0)")
    balance_after: Inr
    razorpay_order_id: str | None = None
    razorpay_payment_id: str | None = None
    razorpay_refund_id: str | None = Field(default=None, description="refund: Razorpay's refund id")
    reservation_id: UUID | None = None
    usage_record_id: UUID | None = None
    cost_usd: Exact | None = Field(default=None, description="usage: OpenRouter's reported cost")
    usd_inr_rate: Exact | None = None
    markup: Exact | None = None
    shortfall: Inr | None = Field(default=None, description="usage, refund: what the balance could not cover")
    actor_id: UUID | None = None
    reason: str | None = None
    created_at: UtcTime


class TransactionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: TransactionType | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)


class UsageGroupRow(BaseModel):
    key: str = Field(
        description="the chatbot id (`none` without one), model id (`unknown`: a reply settled without a usage"
        " record), UTC day, or provider key id (`platform`: none)"
    )
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Exact
    credits: Inr = Field(description="INR taken from the balance for these replies")


class CreditUsage(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    group_by: UsageGroup
    from_: UtcTime | None = Field(default=None, alias="from")
    to: UtcTime | None = None
    items: list[UsageGroupRow]
    next_cursor: None = None


class UsageQuery(BaseModel):
    """`GET /workspaces/{id}/credits/usage`: the workspace's usage records in [`from`, `to`), UTC (a date
    alone is midnight UTC; either end may be left open)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    group_by: UsageGroup = Field(default="day", description="per chatbot, model, UTC day or provider key")
    from_: IsoDateTime | None = Field(default=None, alias="from", description="inclusive")
    to: IsoDateTime | None = Field(default=None, description="exclusive")

    @field_validator("to")
    @classmethod
    def _range(cls, to: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("from_")
        if to is not None and isinstance(start, datetime):
            require_ordered(start, to)
        return to
