"""Admin services against the real database: the audit log is append-only for every role, suspensions
stop the next request, quota overrides are what reads, reserves and warnings use (until they expire, are
removed, or the tier changes), and every admin write leaves its audit entry in the same transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from oneai.admin import service
from oneai.admin.audit import admin_write
from oneai.admin.models import QuotaOverrideRequest, SuspendRequest, UserListQuery
from oneai.auth import Principal, authenticate
from oneai.billing import change_tier
from oneai.db.connection import Database
from oneai.errors import ConflictError, ForbiddenError, NotFoundError
from oneai.quota import service as quota
from oneai.quota.sweep import sweep_due_quotas
from oneai.quota.tiers import TIERS
from tests.conftest import AppUser, create_user, token_for
from tests.integration.test_webhooks import Deliver, Scenario
from tests.integration.test_webhooks import deliver as deliver  # noqa: PLC0414 - the fixture, used here too
from tests.integration.test_webhooks import scenario as scenario  # noqa: PLC0414 - the fixture, used here too


def owner_rows(database_url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def owner_execute(database_url: str, query: str, params: Any = None) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(query, params)


def audit_entries(database_url: str, target_id: UUID | str) -> list[dict[str, Any]]:
    return owner_rows(
        database_url, "select * from public.audit_log where target_id = %s order by at, id", (str(target_id),)
    )


def as_admin(user: AppUser) -> Principal:
    return authenticate(
        f"Bearer {token_for(user.id, user.principal.email, extra_claims={'app_metadata': {'role': 'admin'}})}"
    )


def as_admin_target(database_url: str) -> Principal:
    return create_user(database_url).principal


@pytest.fixture
def admin(make_user: Any) -> Principal:
    return as_admin(make_user())


def quota_of(db: Database, user: AppUser, key: str) -> quota.QuotaStatus:
    with db.user_transaction(user.principal) as conn:
        return next(q for q in quota.current_quotas(conn) if q.quota_key == key)


# ---------------------------------------------------------------------------------------- audit log


@pytest.mark.parametrize("role", ["service_role", "authenticated", "anon", None])
@pytest.mark.parametrize(
    "statement",
    [
        "update public.audit_log set reason = 'rewritten'",
        "delete from public.audit_log",
        "truncate public.audit_log",
    ],
)
def test_the_audit_log_refuses_update_delete_and_truncate_for_every_role(
    db: Database, database_url: str, admin: Principal, role: str | None, statement: str
) -> None:
    # GIVEN an audit entry (a suspension)
    target = AppUser(principal=as_admin_target(database_url), token="")
    service.suspend_user(db, admin, target.id, SuspendRequest(reason="spam"))
    before = audit_entries(database_url, target.id)
    assert len(before) == 1
    # WHEN any role the API uses (or the connecting role itself, None) tries to change or remove it
    with psycopg.connect(database_url) as conn:
        if role is not None:
            conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # THEN it is still there, unchanged
    assert audit_entries(database_url, target.id) == before


def test_the_service_role_may_append_and_read_but_users_cannot_read_the_audit_log(
    db: Database, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.audit_log (actor_id, action, target_type, target_id) values (%s, 'user.note', 'user', %s)",
            (admin.user_id, str(user.id)),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(user.principal) as conn:
        conn.execute("select * from public.audit_log")


def test_a_failed_write_leaves_neither_the_change_nor_its_audit_entry(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    target = make_user()
    with pytest.raises(RuntimeError), admin_write(db, admin, "user.suspend", "user", target.id) as (conn, change):
        conn.execute("update public.users set suspended_at = now() where id = %s", (target.id,))
        change.after = {"suspended_at": "now"}
        raise RuntimeError("the write fails after its change")
    assert audit_entries(database_url, target.id) == []
    assert owner_rows(database_url, "select suspended_at from public.users where id = %s", (target.id,)) == [
        {"suspended_at": None}
    ]


# ---------------------------------------------------------------------------------------- suspension


def test_suspension_stops_the_next_user_transaction_and_unsuspension_restores_it(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    with db.user_transaction(user.principal):
        pass
    detail = service.suspend_user(db, admin, user.id, SuspendRequest(reason="chargeback fraud"))
    assert detail.suspended_at is not None and detail.suspension_reason == "chargeback fraud"
    with pytest.raises(ForbiddenError), db.user_transaction(user.principal):
        pass
    with pytest.raises(ConflictError):
        service.suspend_user(db, admin, user.id, SuspendRequest(reason="again"))

    service.unsuspend_user(db, admin, user.id)
    with db.user_transaction(user.principal):
        pass
    entries = audit_entries(database_url, user.id)
    assert [(e["action"], e["actor_id"], e["reason"]) for e in entries] == [
        ("user.suspend", admin.user_id, "chargeback fraud"),
        ("user.unsuspend", admin.user_id, None),
    ]
    assert entries[0]["before"] == {"suspended_at": None, "suspension_reason": None}
    assert entries[0]["after"]["suspension_reason"] == "chargeback fraud"
    assert entries[0]["after"]["suspended_at"].endswith("Z")
    assert entries[1]["after"] == {"suspended_at": None, "suspension_reason": None}


def test_admins_cannot_suspend_themselves_and_a_suspended_admin_is_refused(
    db: Database, admin: Principal, make_user: Any
) -> None:
    with pytest.raises(ConflictError):
        service.suspend_user(db, admin, admin.user_id, SuspendRequest(reason="oops"))
    other_admin = as_admin(make_user())
    service.suspend_user(db, admin, other_admin.user_id, SuspendRequest(reason="left the company"))
    with pytest.raises(ForbiddenError):
        service.list_users(db, other_admin, UserListQuery())


def test_unknown_users_are_404(db: Database, admin: Principal) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError):
        service.suspend_user(db, admin, missing, SuspendRequest(reason="x"))
    with pytest.raises(NotFoundError):
        service.get_user(db, admin, missing)
    with pytest.raises(NotFoundError):
        service.set_quota_override(db, admin, missing, "large_messages", QuotaOverrideRequest(limit=5, reason="x"))


# ---------------------------------------------------------------------------------------- quota overrides


def test_an_override_is_the_limit_of_reads_reserves_and_warnings(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    free_limit = TIERS["free"].quotas["large_messages"].limit
    # WHEN an admin raises the user's large-message limit
    saved = service.set_quota_override(
        db, admin, user.id, "large_messages", QuotaOverrideRequest(limit=free_limit + 3, reason="outage credit")
    )
    assert (saved.limit, saved.tier_limit) == (free_limit + 3, free_limit)
    # THEN the user's own read shows it
    assert quota_of(db, user, "large_messages").limit == free_limit + 3
    # AND reserves admit exactly up to it, then refuse
    owner_execute(
        database_url,
        "update public.usage_quotas set used_count = %s where user_id = %s and quota_key = 'large_messages'",
        (free_limit, user.id),
    )
    with db.user_transaction(user.principal) as conn:
        admitted = [quota.reserve(conn, "large_messages") for _ in range(3)]
    assert [(r.used, r.limit) for r in admitted] == [(free_limit + n, free_limit + 3) for n in (1, 2, 3)]
    with pytest.raises(Exception) as refused, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "large_messages")
    assert getattr(refused.value, "code", None) == "QUOTA_EXCEEDED"
    assert refused.value.details["limit"] == free_limit + 3  # type: ignore[attr-defined]
    # AND the other quotas keep the tier's limits
    assert quota_of(db, user, "small_messages").limit == TIERS["free"].quotas["small_messages"].limit


def test_the_warnings_use_the_overridden_limit(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    service.set_quota_override(
        db, admin, user.id, "small_messages", QuotaOverrideRequest(limit=10, reason="trial")
    )
    owner_execute(
        database_url,
        "update public.usage_quotas set used_count = 7 where user_id = %s and quota_key = 'small_messages'",
        (user.id,),
    )
    with db.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "small_messages")
    # 8 of 10 is 80 % of the override (of the tier's 100 it would be nothing)
    assert (reservation.used, reservation.limit, reservation.warnings_crossed) == (8, 10, (80,))


def test_an_expired_override_ends_by_itself(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    free_limit = TIERS["free"].quotas["large_messages"].limit
    service.set_quota_override(
        db,
        admin,
        user.id,
        "large_messages",
        QuotaOverrideRequest(limit=500, reason="one day", expires_at=datetime.now(UTC) + timedelta(hours=1)),
    )
    assert quota_of(db, user, "large_messages").limit == 500
    # WHEN its time comes (moved into the past: the API refuses a past expiry)
    owner_execute(
        database_url,
        "update public.quota_overrides set expires_at = now() - interval '1 second' where user_id = %s",
        (user.id,),
    )
    # THEN reads and reserves are back on the tier's limit, without any sweep
    assert quota_of(db, user, "large_messages").limit == free_limit
    owner_execute(
        database_url,
        "update public.usage_quotas set used_count = %s where user_id = %s and quota_key = 'large_messages'",
        (free_limit, user.id),
    )
    with pytest.raises(Exception) as refused, db.user_transaction(user.principal) as conn:
        quota.reserve(conn, "large_messages")
    assert getattr(refused.value, "code", None) == "QUOTA_EXCEEDED"
    assert service.get_user(db, admin, user.id).quotas[1].override is None


def test_the_sweep_resets_usage_and_keeps_the_override(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    service.set_quota_override(db, admin, user.id, "image_generation", QuotaOverrideRequest(limit=42, reason="x"))
    owner_execute(
        database_url,
        "update public.usage_quotas set used_count = 40, next_reset_at = now() - interval '1 minute'"
        " where user_id = %s and quota_key = 'image_generation'",
        (user.id,),
    )
    sweep_due_quotas(db, "3hour")
    status = quota_of(db, user, "image_generation")
    assert (status.used, status.limit) == (0, 42)


def test_a_tier_change_ends_the_overrides_with_a_system_audit_entry(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    service.set_quota_override(
        db, admin, user.id, "large_messages", QuotaOverrideRequest(limit=60, reason="goodwill")
    )
    with db.service_transaction() as conn:
        assert change_tier(conn, user_id=user.id, new_tier="pro", reason="new_subscription")
    assert quota_of(db, user, "large_messages").limit == TIERS["pro"].quotas["large_messages"].limit
    ended = audit_entries(database_url, user.id)[-1]
    assert (ended["action"], ended["actor_id"], ended["reason"]) == (
        "quota_override.end",
        None,
        "tier changed from free to pro",
    )
    assert ended["before"] == {
        "quota_key": "large_messages",
        "limit": 60,
        "reason": "goodwill",
        "expires_at": None,
    }


def test_setting_replacing_and_removing_an_override_are_audited(
    db: Database, database_url: str, admin: Principal, make_user: Any
) -> None:
    user = make_user()
    service.set_quota_override(db, admin, user.id, "large_messages", QuotaOverrideRequest(limit=30, reason="a"))
    service.set_quota_override(db, admin, user.id, "large_messages", QuotaOverrideRequest(limit=35, reason="b"))
    service.remove_quota_override(db, admin, user.id, "large_messages")
    with pytest.raises(NotFoundError):
        service.remove_quota_override(db, admin, user.id, "large_messages")
    entries = audit_entries(database_url, user.id)
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("quota_override.set", "a"),
        ("quota_override.set", "b"),
        ("quota_override.remove", None),
    ]
    assert entries[0]["before"] is None and entries[0]["after"]["limit"] == 30
    assert entries[1]["before"]["limit"] == 30 and entries[1]["after"]["limit"] == 35
    assert entries[2]["before"]["limit"] == 35 and entries[2]["after"] is None
    assert quota_of(db, user, "large_messages").limit == TIERS["free"].quotas["large_messages"].limit


def test_the_user_list_filters_and_pages(db: Database, admin: Principal, make_user: Any) -> None:
    marker = uuid.uuid4().hex[:8]
    users = [make_user(email=f"{marker}-{i}@list.test") for i in range(5)]
    service.suspend_user(db, admin, users[0].id, SuspendRequest(reason="x"))
    seen: list[UUID] = []
    cursor = None
    while True:
        page = service.list_users(db, admin, UserListQuery(q=marker, limit=2, cursor=cursor))
        seen += [u.id for u in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [u.id for u in reversed(users)]
    suspended = service.list_users(db, admin, UserListQuery(q=marker, status="suspended"))
    assert [u.id for u in suspended.items] == [users[0].id]
    # LIKE wildcards in q are literal
    assert service.list_users(db, admin, UserListQuery(q=f"{marker}%")).items == []
    assert [u.id for u in service.list_users(db, admin, UserListQuery(q=str(users[2].id))).items] == [users[2].id]


# ---------------------------------------------------------------------------------------- charges (revenue)


def test_a_charged_webhook_records_its_payment_once_with_the_subscriptions_tier(
    deliver: Deliver, database_url: str, scenario: Callable[[], Scenario]
) -> None:
    s = scenario()
    assert deliver(s.body("subscription.activated", at=s.base)).status == 200
    document = json.loads(s.body("subscription.charged", at=s.base + 10))
    payment = document["payload"]["payment"]["entity"]
    payment.update(id=f"pay_{uuid.uuid4().hex[:14]}", amount=999, currency="usd", created_at=s.base + 9)
    body = json.dumps(document).encode()
    # WHEN the charge arrives twice under different delivery ids (Razorpay retries with a new event id)
    assert deliver(body).status == 200
    assert deliver(body).status == 200
    # THEN one charge is kept: the subscription's tier, the amount in cents, the payment's time
    rows = owner_rows(
        database_url,
        "select c.tier, c.amount, c.currency, c.charged_at from public.subscription_charges c"
        " join public.subscriptions s on s.id = c.subscription_id where s.provider_subscription_id = %s",
        (s.subscription_id,),
    )
    assert rows == [
        {"tier": "pro", "amount": 999, "currency": "USD", "charged_at": datetime.fromtimestamp(s.base + 9, UTC)}
    ]
