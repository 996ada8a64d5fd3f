"""Shapes of the account routes (docs/api/account.md): inputs, validated here, and
answers. Times are UTC (`...Z` in JSON); costs are USD as plain decimal strings, exact, like OpenRouter's
prices (`"0.0015"`, never `1.5E-3`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    StringConstraints,
    UrlConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oneai.money import plain_decimal
from oneai.quota.tiers import QuotaKey, ResetFrequency, TierName
from oneai.timestamps import IsoDateTime, UtcTime, as_utc, require_ordered

SubscriptionStatus = Literal["active", "pending", "halted", "cancelled", "completed"]
UsageGrouping = Literal["model", "day", "api_key"]
UsageFormat = Literal["json", "csv"]
Theme = Literal["light", "dark", "system"]

MAX_CHECK_UNITS: Final = 1000
DEFAULT_USAGE_DAYS: Final = 30
MAX_USAGE_DAYS: Final = 366
MAX_NAME_CHARS: Final = 100
MAX_PICTURE_URL_CHARS: Final = 2048
MAX_MODEL_ID_CHARS: Final = 200
# BCP 47-ish: a 2-3 letter language, then subtags of 1-8 letters or digits (`en`, `pt-BR`, `zh-Hant-TW`).
LANGUAGE_TAG: Final = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"


Cost = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str)]


class Subscription(BaseModel):
    tier: TierName
    status: SubscriptionStatus


# ---------------------------------------------------------------- quota


class QuotaUsage(BaseModel):
    """One quota of `GET /user/quota` (a due reset already applied)."""

    used: int
    limit: int
    remaining: int
    resets_at: UtcTime
    # Over 100 after a downgrade that kept usage above the new limit.
    percentage_used: float
    reset_frequency: ResetFrequency


class QuotaOverview(BaseModel):
    subscription: Subscription
    quotas: dict[QuotaKey, QuotaUsage]


class QuotaCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_key: QuotaKey
    units: Annotated[int, Field(strict=True, ge=1, le=MAX_CHECK_UNITS)] = 1


class QuotaCheckResult(BaseModel):
    """The quota would admit `units` now. Nothing is reserved: a later request may still be refused."""

    allowed: Literal[True] = True
    quota_key: QuotaKey
    used: int
    limit: int
    remaining: int
    resets_at: UtcTime


# ---------------------------------------------------------------- usage


class UsageQuery(BaseModel):
    """`GET /user/usage`: records created in [`from`, `to`), UTC. `to` defaults to now, `from` to 30 days
    before `to`; a date alone is midnight UTC. The range is at most 366 days."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: IsoDateTime | None = Field(default=None, alias="from", description="inclusive; default: to - 30 days")
    to: IsoDateTime | None = Field(default=None, validate_default=True, description="exclusive; default: now")
    group_by: UsageGrouping = Field(
        default="model", description="per model id, per UTC day, or per API key id (`web` for the web chat)"
    )
    format: UsageFormat = Field(default="json", description="csv: a download with a header row")

    @field_validator("to")
    @classmethod
    def _range(cls, to: datetime | None, info: ValidationInfo) -> datetime:
        # `from` is validated first; a bad `from` is reported on its own and leaves nothing to compare.
        end = as_utc(to) if to is not None else datetime.now(UTC)
        start = info.data.get("from_")
        if isinstance(start, datetime):
            require_ordered(start, end)
            if end - start > timedelta(days=MAX_USAGE_DAYS):
                raise ValueError(f"the range from..to may span at most {MAX_USAGE_DAYS} days")
        return end

    @model_validator(mode="after")
    def _default_start(self) -> UsageQuery:
        if self.from_ is None:
            self.from_ = self.end - timedelta(days=DEFAULT_USAGE_DAYS)
        return self

    @property
    def start(self) -> datetime:
        if self.from_ is None:  # filled by the validator; only model_construct() could skip it
            raise ValueError("UsageQuery was not validated")
        return self.from_

    @property
    def end(self) -> datetime:
        if self.to is None:
            raise ValueError("UsageQuery was not validated")
        return self.to


class UsageTotals(BaseModel):
    messages: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Cost


class UsageRow(UsageTotals):
    """One group: a model id (the model that served the replies) or a UTC day `YYYY-MM-DD`."""

    group: str


class UsageReport(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: UtcTime = Field(alias="from")
    to: UtcTime
    group_by: UsageGrouping
    items: list[UsageRow]
    totals: UsageTotals


# ---------------------------------------------------------------- profile


class Profile(BaseModel):
    id: UUID
    email: str | None
    name: str | None
    picture_url: str | None
    # As stored: the keys of `Preferences` (written through this API), possibly others written elsewhere.
    preferences: dict[str, Any]
    subscription: Subscription
    created_at: UtcTime


ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MODEL_ID_CHARS)]
LanguageTag = Annotated[str, StringConstraints(min_length=2, max_length=35, pattern=LANGUAGE_TAG)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)]
PictureUrl = Annotated[HttpUrl, UrlConstraints(max_length=MAX_PICTURE_URL_CHARS, allowed_schemes=["https"])]


StrictBool = Annotated[bool, Field(strict=True)]


class NotificationPreferences(BaseModel):
    """`preferences.notifications`: which emails you get (each default true; null puts one back to its
    default). Payment receipts and payment failures are sent whatever `billing` says."""

    model_config = ConfigDict(extra="forbid")

    quota_warnings: StrictBool | None = Field(default=None, description="80, 90 and 100 % of a quota")
    billing: StrictBool | None = Field(default=None, description="subscription ended (receipts always go out)")
    product: StrictBool | None = Field(default=None, description="welcome and product news")
    usage_summary: StrictBool | None = Field(default=None, description="the monthly usage summary")


class Preferences(BaseModel):
    """The preferences a PATCH may set. Each is optional; null removes the stored value."""

    model_config = ConfigDict(extra="forbid")

    default_model: ModelId | None = Field(default=None, description="an offered model your plan includes")
    theme: Theme | None = None
    language: LanguageTag | None = Field(default=None, description="a BCP 47 language tag, e.g. en or pt-BR")
    send_on_enter: Annotated[bool, Field(strict=True)] | None = None
    # Merged switch by switch into the stored ones (not replaced as a whole).
    notifications: NotificationPreferences | None = None


class ProfileUpdate(BaseModel):
    """`PATCH /user/profile`, merge-patch style: absent fields stay; `name` / `picture_url` null clears them;
    `preferences` merges key by key into the stored ones (a null key removes it, `preferences: null`
    removes them all). Tier, status and email are not yours to change: any other field is a 422."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: Name | None = None
    picture_url: PictureUrl | None = None
    preferences: Preferences | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ProfileUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, picture_url, preferences")
        return self
