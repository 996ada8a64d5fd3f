"""Changing tier: the users row, one history row and the quota rows change together, in the caller's
transaction. An upgrade starts fresh windows with no use; a downgrade keeps the use under the new limits;
the same tier again writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from oneai.billing import change_tier
from oneai.billing.tier_change import TIER_RANK, is_upgrade
from oneai.db.connection import Database
from oneai.errors import NotFoundError
from oneai.quota.tiers import TIER_NAMES, TIERS, TierName
from tests.conftest import AppUser


def snapshot(database_url: str, user_id: UUID) -> dict[str, Any]:
    """Everything a tier change may touch, as stored."""
    with psycopg.connect(database_url, row_factory=dict_row) as admin:
        user = admin.execute(
            "select subscription_tier, subscription_status, updated_at from public.users where id = %s",
            (user_id,),
        ).fetchone()
        quotas = admin.execute(
            "select quota_key, subscription_tier, used_count, quota_limit, reset_frequency, last_reset_at,"
            " next_reset_at, warning_level, updated_at from public.usage_quotas where user_id = %s",
            (user_id,),
        ).fetchall()
        history = admin.execute(
            "select subscription_id, old_tier, new_tier, change_reason, metadata from public.subscription_history"
            " where user_id = %s order by changed_at, id",
            (user_id,),
        ).fetchall()
    return {"user": user, "quotas": {q["quota_key"]: q for q in quotas}, "history": history}


def use(database_url: str, user_id: UUID, **used: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        for key, count in used.items():
            admin.execute(
                "update public.usage_quotas set used_count = %s, warning_level = 80"
                " where user_id = %s and quota_key = %s",
                (count, user_id, key),
            )


def limits(state: dict[str, Any]) -> dict[str, int]:
    return {key: row["quota_limit"] for key, row in state["quotas"].items()}


def tier_limits(tier: TierName) -> dict[str, int]:
    return {key: limit.limit for key, limit in TIERS[tier].quotas.items()}


def test_an_upgrade_sets_the_tier_writes_history_and_resets_usage(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    # GIVEN a free user who has used some of each quota
    user = make_user()
    use(database_url, user.id, small_messages=60, large_messages=20, image_generation=4)
    before = snapshot(database_url, user.id)

    # WHEN they upgrade to pro (no subscription row: an operator's grant)
    with db.service_transaction() as conn:
        changed = change_tier(
            conn,
            user_id=user.id,
            new_tier="pro",
            reason="upgrade",
            metadata={"granted_by": "support", "ticket": 4211},
            subscription_status="active",
        )

    # THEN the user is pro and active, with one history row free -> pro
    assert changed is True
    after = snapshot(database_url, user.id)
    assert (after["user"]["subscription_tier"], after["user"]["subscription_status"]) == ("pro", "active")
    assert after["history"] == [
        {
            "subscription_id": None,
            "old_tier": "free",
            "new_tier": "pro",
            "change_reason": "upgrade",
            "metadata": {"granted_by": "support", "ticket": 4211},
        }
    ]
    # AND every quota has pro's limit, no use, no warning, and a fresh window
    assert limits(after) == tier_limits("pro")
    for key, row in after["quotas"].items():
        assert (row["used_count"], row["warning_level"], row["subscription_tier"]) == (0, 0, "pro")
        assert row["last_reset_at"] > before["quotas"][key]["last_reset_at"]


def test_a_downgrade_keeps_usage_under_the_new_limits(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    # GIVEN an enterprise user with usage, some of it above pro's limits
    user = make_user()
    with db.service_transaction() as conn:
        assert change_tier(conn, user_id=user.id, new_tier="enterprise", reason="upgrade")
    use(database_url, user.id, small_messages=700, large_messages=30, image_generation=2)
    before = snapshot(database_url, user.id)

    # WHEN they move down to pro (enterprise -> pro is a downgrade)
    with db.service_transaction() as conn:
        assert change_tier(conn, user_id=user.id, new_tier="pro", reason="downgrade") is True

    # THEN pro's limits apply to the same windows, with the use kept (700 of 500: used up until the reset)
    after = snapshot(database_url, user.id)
    assert after["user"]["subscription_tier"] == "pro"
    assert after["user"]["subscription_status"] == before["user"]["subscription_status"]  # none given: kept
    assert limits(after) == tier_limits("pro")
    for key, row in after["quotas"].items():
        was = before["quotas"][key]
        assert (row["used_count"], row["warning_level"]) == (was["used_count"], was["warning_level"])
        assert (row["last_reset_at"], row["next_reset_at"]) == (was["last_reset_at"], was["next_reset_at"])
    assert [(h["old_tier"], h["new_tier"], h["change_reason"]) for h in after["history"]] == [
        ("free", "enterprise", "upgrade"),
        ("enterprise", "pro", "downgrade"),
    ]


def test_the_same_tier_again_writes_nothing(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    use(database_url, user.id, small_messages=5)
    before = snapshot(database_url, user.id)

    with db.service_transaction() as conn:
        changed = change_tier(
            conn, user_id=user.id, new_tier="free", reason="system", subscription_status="halted"
        )

    assert changed is False
    assert snapshot(database_url, user.id) == before  # not even updated_at moved


def test_the_change_is_part_of_the_callers_transaction(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    before = snapshot(database_url, user.id)

    class Boom(Exception):
        pass

    # WHEN the caller's transaction fails after the change THEN none of it stays
    with pytest.raises(Boom), db.service_transaction() as conn:
        assert change_tier(conn, user_id=user.id, new_tier="pro", reason="upgrade")
        raise Boom

    assert snapshot(database_url, user.id) == before


def test_the_history_row_names_the_subscription(
    db: Database, make_user: Callable[..., AppUser], database_url: str
) -> None:
    user = make_user()
    subscription_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "insert into public.subscriptions (id, user_id, plan_id, tier, status, provider_subscription_id)"
            " values (%s, %s, 'plan_ent', 'enterprise', 'active', %s)",
            (subscription_id, user.id, f"sub_{subscription_id.hex[:14]}"),
        )
    with db.service_transaction() as conn:
        change_tier(
            conn,
            user_id=user.id,
            new_tier="enterprise",
            reason="new_subscription",
            subscription_id=subscription_id,
        )
    [row] = snapshot(database_url, user.id)["history"]
    assert (row["subscription_id"], row["metadata"]) == (subscription_id, {})


def test_unknown_users_tiers_and_reasons_are_refused(db: Database, make_user: Callable[..., AppUser]) -> None:
    with pytest.raises(NotFoundError), db.service_transaction() as conn:
        change_tier(conn, user_id=uuid.uuid4(), new_tier="pro", reason="upgrade")
    user = make_user()
    bad: list[dict[str, Any]] = [
        {"new_tier": "platinum", "reason": "upgrade"},
        {"new_tier": "pro", "reason": "because"},
        {"new_tier": "pro", "reason": "upgrade", "subscription_status": "sleeping"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError), db.service_transaction() as conn:
            change_tier(conn, user_id=user.id, **kwargs)


def test_tiers_are_ranked_free_pro_enterprise() -> None:
    assert sorted(TIER_NAMES, key=TIER_RANK.__getitem__) == ["free", "pro", "enterprise"]
    assert is_upgrade("free", "pro") and is_upgrade("pro", "enterprise") and is_upgrade("free", "enterprise")
    assert not is_upgrade("enterprise", "pro") and not is_upgrade("pro", "free") and not is_upgrade("pro", "pro")
