"""Admin services: users, suspensions, quota overrides, subscriptions and the audit log.

Every read and write runs as the service role on purpose (`oneai.admin.audit.admin_transaction`); every
write goes through `admin_write`, which records its audit entry in the same transaction. Each write is
a real change or an error: suspending a suspended user, or removing an override that is not there, is a
409 or 404 and leaves no entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from oneai.account.erasure import ErasureReport, erase_account
from oneai.admin import models, paging
from oneai.admin.audit import admin_transaction, admin_write
from oneai.auth import Principal
from oneai.billing.razorpay_client import RazorpayClient
from oneai.billing.razorpay_events import SubscriptionEntity
from oneai.billing.webhooks import apply_fetched_subscription
from oneai.db import admin as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ConflictError, NotFoundError
from oneai.logging import logger
from oneai.pagination import Page
from oneai.quota.service import iso_utc
from oneai.quota.tiers import QuotaKey


def _user(row: repo.UserRow) -> models.AdminUser:
    return models.AdminUser(
        id=row.id,
        email=row.email,
        name=row.name,
        tier=row.tier,
        subscription_status=row.subscription_status,
        suspended_at=row.suspended_at,
        created_at=row.created_at,
        last_active_at=row.last_active_at,
        messages_30d=row.messages_30d,
        cost_30d=row.cost_30d,
    )


def _subscription(row: repo.SubscriptionRow) -> models.AdminSubscription:
    return models.AdminSubscription(**{name: getattr(row, name) for name in models.AdminSubscription.model_fields})


def _quota(row: repo.QuotaRow) -> models.AdminQuota:
    override = None
    if row.override_limit is not None and row.override_reason is not None and row.override_created_at is not None:
        override = models.QuotaOverrideView(
            limit=row.override_limit,
            reason=row.override_reason,
            expires_at=row.override_expires_at,
            created_by=row.override_created_by,
            created_at=row.override_created_at,
        )
    return models.AdminQuota(
        quota_key=row.quota_key,
        used=row.used_count,
        limit=row.quota_limit,
        tier_limit=row.tier_limit,
        remaining=max(row.quota_limit - row.used_count, 0),
        resets_at=row.next_reset_at,
        reset_frequency=row.reset_frequency,
        override=override,
    )


# ------------------------------------------------------------------------------------------ reads


def list_users(db: Database, admin: Principal, query: models.UserListQuery) -> Page[models.AdminUser]:
    start = paging.after(query.cursor, "created_at")
    with admin_transaction(db, admin) as conn:
        rows = repo.list_users(
            conn, q=query.q, tier=query.tier, status=query.status, after=start, limit=query.limit + 1
        )
    rows, cursor = paging.one_page(rows, query.limit, "created_at", lambda r: (r.created_at, r.id))
    return Page(items=[_user(r) for r in rows], next_cursor=cursor)


def get_user(db: Database, admin: Principal, user_id: UUID) -> models.AdminUserDetail:
    with admin_transaction(db, admin) as conn:
        row = repo.get_user(conn, user_id)
        if row is None:
            raise NotFoundError("No such user")
        quotas = repo.user_quotas(conn, user_id)
        subscription = repo.latest_subscription_of(conn, user_id)
    return models.AdminUserDetail(
        **_user(row).model_dump(),
        suspension_reason=row.suspension_reason,
        quotas=[_quota(q) for q in quotas],
        subscription=_subscription(subscription) if subscription else None,
        usage=models.UsageTotals(messages=row.messages_30d, tokens=row.tokens_30d, cost=row.cost_30d),
    )


def list_subscriptions(
    db: Database, admin: Principal, query: models.SubscriptionListQuery
) -> Page[models.AdminSubscription]:
    start = paging.after(query.cursor, "created_at")
    with admin_transaction(db, admin) as conn:
        rows = repo.list_subscriptions(conn, status=query.status, after=start, limit=query.limit + 1)
    rows, cursor = paging.one_page(rows, query.limit, "created_at", lambda r: (r.created_at, r.id))
    return Page(items=[_subscription(r) for r in rows], next_cursor=cursor)


def audit_log(db: Database, admin: Principal, query: models.AuditLogQuery) -> Page[models.AuditEntry]:
    start = paging.after(query.cursor, "at")
    with admin_transaction(db, admin) as conn:
        rows = repo.list_audit_log(
            conn,
            target_type=query.target_type,
            target_id=query.target_id,
            actor_id=query.actor_id,
            after=start,
            limit=query.limit + 1,
        )
    rows, cursor = paging.one_page(rows, query.limit, "at", lambda r: (r.at, r.id))
    items = [
        models.AuditEntry(**{name: getattr(r, name) for name in models.AuditEntry.model_fields}) for r in rows
    ]
    return Page(items=items, next_cursor=cursor)


# ------------------------------------------------------------------------------------------ writes


def _suspension(suspended_at: datetime | None, reason: str | None) -> dict[str, Any]:
    return {"suspended_at": iso_utc(suspended_at), "suspension_reason": reason}


def suspend_user(
    db: Database, admin: Principal, user_id: UUID, body: models.SuspendRequest
) -> models.AdminUserDetail:
    """The user's next request, on any route, is 403 (every user transaction checks `suspended_at`)."""
    if user_id == admin.user_id:
        raise ConflictError("You cannot suspend yourself")
    with admin_write(db, admin, "user.suspend", "user", user_id, reason=body.reason) as (conn, change):
        state = repo.lock_user(conn, user_id)
        if state is None:
            raise NotFoundError("No such user")
        if state.suspended_at is not None:
            raise ConflictError("The user is already suspended")
        change.before = _suspension(None, None)
        after = repo.set_suspension(conn, user_id, suspended_at=datetime.now(UTC), reason=body.reason)
        change.after = _suspension(after["suspended_at"], after["suspension_reason"])
    return get_user(db, admin, user_id)


def unsuspend_user(db: Database, admin: Principal, user_id: UUID) -> models.AdminUserDetail:
    with admin_write(db, admin, "user.unsuspend", "user", user_id) as (conn, change):
        state = repo.lock_user(conn, user_id)
        if state is None:
            raise NotFoundError("No such user")
        if state.suspended_at is None:
            raise ConflictError("The user is not suspended")
        change.before = _suspension(state.suspended_at, state.suspension_reason)
        repo.set_suspension(conn, user_id, suspended_at=None, reason=None)
        change.after = _suspension(None, None)
    return get_user(db, admin, user_id)


def erase_user(
    db: Database, admin: Principal, user_id: UUID, razorpay: Callable[[], RazorpayClient]
) -> ErasureReport:
    """Erase the user's account exactly as `DELETE /user` does (`oneai.account.erasure`): a live
    subscription is cancelled at Razorpay first (502 and nothing erased when that fails), then every row
    goes. The audit entry is written in the erasure's last transaction, so it exists if and only if the
    rows are gone; it holds ids and counts only (the log outlives the user)."""
    if user_id == admin.user_id:
        raise ConflictError("You cannot erase your own account here; use DELETE /user")
    with admin_transaction(db, admin) as conn:
        if repo.lock_user(conn, user_id) is None:
            raise NotFoundError("No such user")

    def record(conn: Connection, report: ErasureReport) -> None:
        if not report.erased:  # erased by someone else meanwhile: nothing was done here
            raise NotFoundError("No such user")
        entry_id = repo.insert_audit_entry(
            conn,
            actor_id=admin.user_id,
            action="user.erase",
            target_type="user",
            target_id=str(user_id),
            before=dict(report.rows_erased),
            after={"erased": True, "subscriptions_cancelled": report.subscriptions_cancelled},
            reason=None,
        )
        logger.info(
            "admin write",
            extra={
                "audit_entry_id": str(entry_id),
                "action": "user.erase",
                "target_type": "user",
                "target_id": str(user_id),
                "actor_id": str(admin.user_id),
            },
        )

    return erase_account(db, user_id, razorpay=razorpay, on_erased=record)


def _override(quota_key: str, row: repo.OverrideRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "quota_key": quota_key,
        "limit": row.quota_limit,
        "reason": row.reason,
        "expires_at": iso_utc(row.expires_at),
    }


def set_quota_override(
    db: Database, admin: Principal, user_id: UUID, quota_key: QuotaKey, body: models.QuotaOverrideRequest
) -> models.AdminQuota:
    """The user's limit for `quota_key` becomes `body.limit` at once (their next read or reserve), until
    `expires_at` (or removal, or a change of their tier)."""
    with admin_write(db, admin, "quota_override.set", "user", user_id, reason=body.reason) as (conn, change):
        state = repo.lock_user(conn, user_id)
        if state is None or not repo.has_quota_row(conn, user_id, quota_key):
            raise NotFoundError("No such user")
        change.before = _override(quota_key, repo.lock_override(conn, user_id, quota_key))
        saved = repo.upsert_override(
            conn,
            user_id=user_id,
            quota_key=quota_key,
            limit=body.limit,
            reason=body.reason,
            expires_at=body.expires_at,
            actor_id=admin.user_id,
        )
        change.after = _override(quota_key, saved)
        quota = next(q for q in repo.user_quotas(conn, user_id) if q.quota_key == quota_key)
    return _quota(quota)


def remove_quota_override(db: Database, admin: Principal, user_id: UUID, quota_key: QuotaKey) -> None:
    """Back to the tier's limit. 404 when the user has no override for the key (expired ones included:
    removing one still ends it for the record)."""
    with admin_write(db, admin, "quota_override.remove", "user", user_id) as (conn, change):
        existing = repo.lock_override(conn, user_id, quota_key)
        if existing is None:
            raise NotFoundError("No such override")
        repo.delete_override(conn, user_id, quota_key)
        change.before = _override(quota_key, existing)


def _subscription_state(row: repo.SubscriptionRow, user_tier: str | None) -> dict[str, Any]:
    return {
        "status": row.status,
        "tier": row.tier,
        "plan_id": row.plan_id,
        "paid_until": iso_utc(row.paid_until),
        "grace_until": iso_utc(row.grace_until),
        "current_period_end": iso_utc(row.current_period_end),
        "user_tier": user_tier,
    }


def sync_subscription(
    db: Database, admin: Principal, subscription_id: UUID, razorpay: Callable[[], RazorpayClient]
) -> models.SyncResult:
    """Fetch the subscription from Razorpay (outside any transaction: no lock is held while waiting on it)
    and apply what it says through the webhooks' rules (`apply_fetched_subscription`), the one place that
    decides entitlement, with its audit entry in the same transaction. `razorpay` gives the client once the
    subscription is known to exist (503 when Razorpay is not configured)."""
    with admin_transaction(db, admin) as conn:
        found = repo.get_subscription(conn, subscription_id)
    if found is None:
        raise NotFoundError("No such subscription")
    fetched = razorpay().fetch_subscription(found.provider_subscription_id)
    entity = SubscriptionEntity.model_validate(fetched.model_dump())
    with admin_write(db, admin, "subscription.sync", "subscription", subscription_id) as (conn, change):
        before = repo.get_subscription(conn, subscription_id)
        if before is None:
            raise NotFoundError("No such subscription")
        change.before = _subscription_state(before, repo.user_tier(conn, before.user_id))
        result = apply_fetched_subscription(
            conn, db.settings, entity, fetched_at=datetime.now(UTC), source_id=f"admin-sync:{uuid4()}"
        )
        after = repo.get_subscription(conn, subscription_id)
        assert after is not None
        tier = repo.user_tier(conn, after.user_id)
        change.after = _subscription_state(after, tier)
    return models.SyncResult(
        subscription=_subscription(after),
        user_tier=tier,
        tier_changed=result.tier_changed,
    )
