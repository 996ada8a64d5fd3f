"""The provider-key routes' bodies and answers (API.md "Provider keys (bring your own)").

The key a caller sends is a `SecretStr` from the moment it is read (shown as `**********` in any repr, log
line or validation error); what the API shows of it is `"…abcd"` (`oneai.crypto.envelope.mask_key`)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SecretStr, StringConstraints, field_validator

from oneai.money import balance_decimal
from oneai.timestamps import UtcTime

Provider = Literal["openrouter", "openai", "anthropic", "google", "custom"]
PROVIDERS: Final[tuple[str, ...]] = ("openrouter", "openai", "anthropic", "google", "custom")
KeyStatus = Literal["active", "invalid"]

KEY_MIN_CHARS: Final = 8
KEY_MAX_CHARS: Final = 512
# Printable ASCII without the space: what every provider's keys are made of.
_KEY_CHARS: Final = re.compile(r"^[\x21-\x7e]+$")
_LIMIT_PATTERN: Final = re.compile(r"^\d{1,12}(\.\d{1,2})?$")

Inr = Annotated[Decimal, PlainSerializer(balance_decimal, return_type=str)]
KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
BaseUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]


def check_key(value: Any) -> SecretStr:
    """A provider key as sent: a string, its ends' whitespace dropped, 8 to 512 printable ASCII characters
    without spaces. The error messages never quote the value."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    text = raw.strip()
    if not KEY_MIN_CHARS <= len(text) <= KEY_MAX_CHARS:
        raise ValueError(f"must be {KEY_MIN_CHARS} to {KEY_MAX_CHARS} characters long")
    if not _KEY_CHARS.fullmatch(text):
        raise ValueError("may hold only printable ASCII characters, without spaces or control characters")
    return SecretStr(text)


def parse_limit(value: Any) -> Decimal | None:
    """A monthly limit: null (no limit), or INR as a decimal string (or whole number) greater than zero with
    at most two decimals."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "1000.00", or null')
    text = str(value).strip()
    if not _LIMIT_PATTERN.fullmatch(text):
        raise ValueError('must be a decimal string of rupees with at most two decimals, such as "1000.00"')
    try:
        limit = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError("not a decimal") from None
    if limit <= 0:
        raise ValueError("must be greater than zero")
    return limit


class ProviderKeyCreate(BaseModel):
    """`POST /workspaces/{id}/provider-keys`."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    provider: Provider
    name: KeyName
    key: SecretStr = Field(description="the provider's API key (8-512 characters); never shown again")
    base_url: BaseUrl | None = Field(
        default=None, description="`custom` only (required there): its OpenAI-compatible API base URL"
    )
    monthly_limit: Decimal | None = Field(
        default=None, description="INR a month (estimated spend of the replies it serves); null: none"
    )

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> SecretStr:
        return check_key(value)

    @field_validator("monthly_limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> Decimal | None:
        return parse_limit(value)


class ProviderKeyUpdate(BaseModel):
    """`PATCH /provider-keys/{id}`: any of these (`monthly_limit: null` removes the limit)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: KeyName | None = None
    key: SecretStr | None = Field(default=None, description="a new key for the same provider")
    base_url: BaseUrl | None = Field(
        default=None, description="`custom` only; a new base_url only together with `key` (422 on `key` otherwise)"
    )
    monthly_limit: Decimal | None = None

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> SecretStr | None:
        return None if value is None else check_key(value)

    @field_validator("monthly_limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> Decimal | None:
        return parse_limit(value)


class ProviderKey(BaseModel):
    """A provider key as the API shows it: masked."""

    id: UUID
    workspace_id: UUID
    provider: Provider
    name: str
    key: str = Field(description='masked: "…" and the last four characters ("…" alone for a short key)')
    base_url: str | None = Field(description="`custom` only")
    monthly_limit: Inr | None = Field(description="INR a month, or null")
    spent_this_month: Inr = Field(
        description="INR: the estimated cost of the replies it served this UTC month (USD cost x ONEAI_USD_INR_RATE)"
    )
    status: KeyStatus = Field(description="`invalid` once the provider refused it (a test or a reply)")
    invalid_reason: str | None
    checked_at: UtcTime | None = Field(description="when a test or a refusal last set `status`")
    created_by: UUID | None
    created_at: UtcTime
    updated_at: UtcTime


class ProviderKeyTest(BaseModel):
    """`POST /provider-keys/{id}/test`: whether the provider accepted the key, with the models it lists."""

    ok: bool
    models: list[str] | None = Field(default=None, description="the model ids the provider listed (ok only)")
    error: str | None = Field(default=None, description="why not (not ok only)")
    reason: Literal["refused", "no_funds"] | None = Field(
        default=None,
        description=(
            "refused: the provider refused the key (it is marked invalid); no_funds: the key is accepted but "
            "its account at the provider has no funds or quota left (its status is not changed); null: ok, "
            "or another failure"
        ),
    )


__all__ = [
    "KEY_MAX_CHARS",
    "KEY_MIN_CHARS",
    "PROVIDERS",
    "KeyStatus",
    "Provider",
    "ProviderKey",
    "ProviderKeyCreate",
    "ProviderKeyTest",
    "ProviderKeyUpdate",
    "check_key",
    "parse_limit",
]
