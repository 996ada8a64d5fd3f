"""The caller's account: quotas as they stand, a read-only quota check, usage statistics, the profile.

Every function takes the connection of the caller's `db.user_transaction(principal)`: Row Level
Security narrows every statement to the caller's own rows.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Final

from oneai.account.models import (
    Profile,
    ProfileUpdate,
    QuotaCheckRequest,
    QuotaCheckResult,
    QuotaOverview,
    QuotaUsage,
    Subscription,
    UsageQuery,
    UsageReport,
    UsageRow,
    UsageTotals,
)
from oneai.chat.offered_models import offered_model
from oneai.conversations.models import Export
from oneai.db import notifications as notifications_repo
from oneai.db import usage as usage_repo
from oneai.db import users as users_repo
from oneai.db.connection import Connection
from oneai.errors import ForbiddenError, QuotaExceededError, ValidationError, field_error
from oneai.money import plain_decimal
from oneai.quota.service import current_quotas, iso_utc
from oneai.quota.tiers import QUOTA_KEYS

USAGE_CSV_COLUMNS: Final = ("group", "messages", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _subscription(row: users_repo.UserProfileRow) -> Subscription:
    return Subscription.model_validate({"tier": row.subscription_tier, "status": row.subscription_status})


# ---------------------------------------------------------------- quota


def quota_overview(conn: Connection) -> QuotaOverview:
    """`GET /user/quota`: the caller's tier and status, and each quota with a due reset applied."""
    subscription = _subscription(users_repo.caller_profile(conn))
    by_key = {status.quota_key: status for status in current_quotas(conn)}
    quotas = {
        key: QuotaUsage(
            used=status.used,
            limit=status.limit,
            remaining=status.remaining,
            resets_at=status.resets_at,
            percentage_used=status.percentage_used,
            reset_frequency=status.reset_frequency,
        )
        for key in QUOTA_KEYS
        if (status := by_key.get(key)) is not None
    }
    return QuotaOverview(subscription=subscription, quotas=quotas)


def check_quota(conn: Connection, request: QuotaCheckRequest) -> QuotaCheckResult:
    """Would `units` of the quota be admitted now? Read-only: nothing is reserved, so the answer can be
    out of date by the time the work is asked for (the reserve itself stays the one that decides).
    Refused: QuotaExceededError (429) with the details a refused reserve has."""
    status = next((s for s in current_quotas(conn) if s.quota_key == request.quota_key), None)
    if status is not None and status.used + request.units <= status.limit:
        return QuotaCheckResult(
            quota_key=status.quota_key,
            used=status.used,
            limit=status.limit,
            remaining=status.remaining,
            resets_at=status.resets_at,
        )
    # Without a quota row for the key, like the reserve: limit 0, no reset, the caller's tier.
    used, limit = (status.used, status.limit) if status else (0, 0)
    resets_at = iso_utc(status.resets_at) if status else None
    tier = status.tier if status else users_repo.caller_tier(conn)
    name = request.quota_key.replace("_", " ")
    left = max(limit - used, 0)
    raise QuotaExceededError(
        (f"Your {name} quota has only {left} left" if left else f"Your {name} quota is used up")
        + (f" until {resets_at}" if resets_at else ""),
        details={
            "quota_key": request.quota_key,
            "used": used,
            "limit": limit,
            "resets_at": resets_at,
            "tier": tier,
        },
    )


# ---------------------------------------------------------------- usage


def usage_report(conn: Connection, query: UsageQuery) -> UsageReport:
    """`GET /user/usage`: messages, tokens and cost per model or per UTC day in [from, to), with totals."""
    rows = usage_repo.usage_sums(conn, group_by=query.group_by, start=query.start, end=query.end)
    items = [UsageRow.model_validate(row, from_attributes=True) for row in rows]
    totals = UsageTotals(
        messages=sum(r.messages for r in items),
        prompt_tokens=sum(r.prompt_tokens for r in items),
        completion_tokens=sum(r.completion_tokens for r in items),
        total_tokens=sum(r.total_tokens for r in items),
        cost=sum((r.cost for r in items), Decimal(0)),
    )
    return UsageReport(from_=query.start, to=query.end, group_by=query.group_by, items=items, totals=totals)


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def usage_csv(report: UsageReport) -> Export:
    """The report's groups as CSV (RFC 4180, a header row, one line per group), named by its range."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(USAGE_CSV_COLUMNS)
    for row in report.items:
        writer.writerow(
            (
                _cell(row.group),
                row.messages,
                row.prompt_tokens,
                row.completion_tokens,
                row.total_tokens,
                plain_decimal(row.cost),
            )
        )
    filename = f"usage-{report.from_.date().isoformat()}-{report.to.date().isoformat()}.csv"
    return Export(filename=filename, media_type="text/csv", body=buffer.getvalue().encode("utf-8"))


# ---------------------------------------------------------------- profile


def _profile(row: users_repo.UserProfileRow) -> Profile:
    return Profile(
        id=row.id,
        email=row.email,
        name=row.name,
        picture_url=row.picture_url,
        preferences=row.preferences,
        subscription=_subscription(row),
        created_at=row.created_at,
    )


def get_profile(conn: Connection) -> Profile:
    return _profile(users_repo.caller_profile(conn))


def _check_default_model(model_id: str, tier: str) -> None:
    # Both refusals are 422 on the body's field, not the 403 that `offered_model` gives for a model
    # outside the tier: choosing a default is not using the model, it is a value this plan cannot hold.
    field = "preferences.default_model"
    try:
        offered_model(model_id, tier)
    except ValidationError:
        raise ValidationError(
            "This model is not offered",
            details={"errors": [field_error(field, f"not an offered model: {model_id}", "model_not_offered")]},
        ) from None
    except ForbiddenError as refused:
        raise ValidationError(
            "Your plan does not include this model",
            details={
                "errors": [
                    field_error(field, f"the {tier} plan does not include {model_id}", "model_not_in_plan")
                ],
                "tiers": refused.details.get("tiers", []),
            },
        ) from None


def update_profile(conn: Connection, update: ProfileUpdate) -> Profile:
    """`PATCH /user/profile`: see `ProfileUpdate` for the merge rules."""
    given = update.model_fields_set
    changes: dict[str, str | None] = {}
    if "name" in given:
        changes["name"] = update.name
    if "picture_url" in given:
        changes["picture_url"] = str(update.picture_url) if update.picture_url is not None else None

    merge: dict[str, object] | None = None
    remove: list[str] = []
    if "preferences" in given and update.preferences is not None:
        preferences = update.preferences
        if preferences.default_model is not None:
            _check_default_model(preferences.default_model, users_repo.caller_tier(conn))
        chosen = preferences.model_dump(include=preferences.model_fields_set)
        if preferences.notifications is not None:  # merged switch by switch (null: back to the default)
            del chosen["notifications"]
            switches = preferences.notifications.model_dump(include=preferences.notifications.model_fields_set)
            notifications_repo.merge_notification_preferences(
                conn,
                None,
                {key: value for key, value in switches.items() if value is not None},
                sorted(key for key, value in switches.items() if value is None),
            )
        merge = {key: value for key, value in chosen.items() if value is not None}
        remove = sorted(key for key, value in chosen.items() if value is None)
    row = users_repo.update_caller_profile(
        conn,
        changes=changes,
        preferences=merge,
        remove_preferences=remove,
        replace_preferences="preferences" in given and update.preferences is None,
    )
    return _profile(row)
