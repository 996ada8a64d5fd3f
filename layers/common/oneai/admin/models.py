"""Shapes of the admin routes (API.md "Admin"): inputs, validated here, and answers. Times are UTC
(`...Z`); money is USD as decimal strings (`"0.00012"`, `"19.98"`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

from oneai.account.models import Cost
from oneai.day_range import DayRangeQuery
from oneai.ids import CanonicalUuid
from oneai.money import balance_decimal
from oneai.quota.tiers import QuotaKey, ResetFrequency, TierName
from oneai.timestamps import UtcTime

# users.subscription_status values, and "suspended" (suspended_at set) for the user list's `status`.
UserStatusFilter = Literal["active", "pending", "halted", "cancelled", "completed", "suspended"]
# A workspace's state for the admin's workspace list: live and answering, suspended, or soft-deleted.
WorkspaceStatusFilter = Literal["active", "suspended", "deleted"]
SubscriptionStatusFilter = Literal[
    "created", "authenticated", "active", "pending", "halted", "cancelled", "completed", "expired", "paused"
]
# A balance (a workspace's credits): a decimal string with at least cents.
Balance = Annotated[Decimal, PlainSerializer(balance_decimal, return_type=str)]
MAX_REASON_CHARS: Final = 1000
MAX_QUERY_CHARS: Final = 200
MAX_QUOTA_LIMIT: Final = 1_000_000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it as invalid input instead of failing in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON_CHARS)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuspendRequest(_Input):
    reason: Reason

    _reason_text = field_validator("reason")(_no_nul)


class QuotaOverrideRequest(_Input):
    limit: int = Field(ge=0, le=MAX_QUOTA_LIMIT, description="The limit that replaces the tier's")
    reason: Reason
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the override ends; null: until removed"
    )

    _reason_text = field_validator("reason")(_no_nul)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class UserListQuery(BaseModel):
    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)] | None
    ) = Field(default=None, description="Part of the e-mail or name, or a user id")
    tier: TierName | None = None
    status: UserStatusFilter | None = Field(
        default=None, description="A subscription status of the user, or `suspended`"
    )
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None

    _q_text = field_validator("q")(lambda v: None if v is None else _no_nul(v))


class WorkspaceListQuery(BaseModel):
    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)] | None
    ) = Field(default=None, description="Part of the name or slug, or a workspace id")
    owner_id: CanonicalUuid | None = Field(default=None, description="Only the workspaces this user owns")
    status: WorkspaceStatusFilter | None = Field(
        default=None, description="`active` (neither suspended nor deleted), `suspended` or `deleted`"
    )
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None

    _q_text = field_validator("q")(lambda v: None if v is None else _no_nul(v))


class SubscriptionListQuery(BaseModel):
    status: SubscriptionStatusFilter | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class AuditLogQuery(BaseModel):
    target_type: Literal["user", "subscription", "workspace"] | None = None
    target_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    actor_id: CanonicalUuid | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None

    _target_text = field_validator("target_id")(lambda v: None if v is None else _no_nul(v))


class AnalyticsQuery(DayRangeQuery):
    """`?from&to` of the product's analytics."""


# ------------------------------------------------------------------------------------------ answers


class AdminUser(BaseModel):
    id: UUID
    email: str | None
    name: str | None
    tier: TierName
    subscription_status: str
    suspended_at: UtcTime | None
    created_at: UtcTime
    last_active_at: UtcTime | None
    messages_30d: int
    cost_30d: Cost


class QuotaOverrideView(BaseModel):
    limit: int
    reason: str
    expires_at: UtcTime | None
    created_by: UUID | None
    created_at: UtcTime


class AdminQuota(BaseModel):
    quota_key: QuotaKey
    used: int
    # The limit in force: the override's while one is in force, else the tier's.
    limit: int
    tier_limit: int
    remaining: int
    resets_at: UtcTime
    reset_frequency: ResetFrequency
    override: QuotaOverrideView | None


class AdminSubscription(BaseModel):
    id: UUID
    user_id: UUID
    provider_subscription_id: str
    plan_id: str
    tier: str
    status: str
    current_period_start: UtcTime | None
    current_period_end: UtcTime | None
    paid_until: UtcTime | None
    grace_until: UtcTime | None
    cancel_at_period_end: bool
    created_at: UtcTime
    updated_at: UtcTime


class UsageTotals(BaseModel):
    messages: int
    tokens: int
    cost: Cost


class AdminUserDetail(AdminUser):
    suspension_reason: str | None
    quotas: list[AdminQuota]
    subscription: AdminSubscription | None
    # The last 30 days.
    usage: UsageTotals


class SyncResult(BaseModel):
    subscription: AdminSubscription
    user_tier: TierName
    tier_changed: bool


class AuditEntry(BaseModel):
    id: UUID
    actor_id: UUID | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    at: UtcTime


class WorkspaceOwner(BaseModel):
    id: UUID
    email: str | None
    name: str | None


class WorkspaceStats(BaseModel):
    """API.md "Workspaces and teams" `stats`: the figures a workspace's members see (oneai.db.workspaces.STATS)."""

    chatbots: int = 0
    documents: int = 0
    storage_bytes: int = 0
    messages_30d: int = 0
    credits_balance: Balance = Decimal("0.00")
    members: int


class AdminWorkspace(BaseModel):
    id: UUID
    name: str
    slug: str
    industry: str | None
    personal: bool
    owner: WorkspaceOwner
    stats: WorkspaceStats
    created_at: UtcTime
    updated_at: UtcTime
    # Set while an admin has the workspace suspended: its chatbots and widget do not answer.
    suspended_at: UtcTime | None
    # Set while it is soft-deleted: restorable by an owner until 30 days after, then purged.
    deleted_at: UtcTime | None
    purge_after: UtcTime | None = Field(description="When the sweep may purge a deleted workspace")


class UserCounts(BaseModel):
    total: int
    new: int
    active: int


class DayFigures(BaseModel):
    day: date
    messages: int
    tokens: int
    cost: Cost


class ModelFigures(BaseModel):
    model: str
    messages: int
    tokens: int
    cost: Cost


class TierRevenue(BaseModel):
    tier: str
    active_subscriptions: int
    mrr: Cost
    charged: Cost
    charges: int


class Revenue(BaseModel):
    currency: str
    mrr: Cost
    by_tier: list[TierRevenue]


class TierMargin(BaseModel):
    tier: str
    revenue: Cost
    cost: Cost
    margin: Cost


class Forecast(BaseModel):
    method: str
    cost_next_30d: Cost
    revenue_next_30d: Cost


class Analytics(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    users: UserCounts
    messages_by_day: list[DayFigures]
    cost_by_model: list[ModelFigures]
    revenue: Revenue
    margin_by_tier: list[TierMargin]
    forecast: Forecast


def as_decimal(value: Decimal | int | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


class AdminCreditGrant(BaseModel):
    """`POST /admin/workspaces/{id}/credits/grant`: the grant's transaction and the balance after it."""

    workspace_id: UUID
    transaction_id: UUID
    amount: Balance
    balance: Balance


class AdminCreditAdjustment(BaseModel):
    """`POST /admin/workspaces/{id}/credits/adjust`: the adjustment's transaction and the balance after it."""

    workspace_id: UUID
    transaction_id: UUID
    amount: Balance = Field(description="signed")
    balance: Balance
