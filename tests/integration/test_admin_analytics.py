"""Analytics figures against a known dataset, in a database of their own (nothing else in it), each figure
checked exactly: users, usage per day and per model, revenue, margin by tier and the forecast."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pydantic import SecretStr

from oneai.admin.analytics import analytics, linear_forecast
from oneai.admin.models import AnalyticsQuery
from oneai.auth import authenticate
from oneai.config import override_settings
from oneai.db.connection import Database
from tests.conftest import own_database, token_for

FIRST, LAST = date(2026, 3, 1), date(2026, 3, 5)


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def analytics_database(admin_database_url: str) -> Iterator[str]:
    with own_database(admin_database_url, "analytics") as url:
        yield url


class Seed:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def user(self, created: datetime, tier: str) -> UUID:
        user_id = uuid.uuid4()
        self.conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@seed.test"))
        # tier set directly: the trigger of a tier change only ends overrides (there are none)
        self.conn.execute(
            "update public.users set created_at = %s, subscription_tier = %s where id = %s",
            (created, tier, user_id),
        )
        return user_id

    def usage(self, user_id: UUID, when: datetime, model: str, *, tokens: tuple[int, int], cost: str) -> None:
        prompt, completion = tokens
        self.conn.execute(
            "insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,"
            " completion_tokens, cost, created_at) values (%s, 'small_messages', %s, %s, %s, %s, %s, %s)",
            (user_id, model, model, prompt, completion, Decimal(cost), when),
        )

    def subscription(self, user_id: UUID, tier: str, status: str) -> UUID:
        row = self.conn.execute(
            "insert into public.subscriptions (user_id, plan_id, tier, status, provider_subscription_id)"
            " values (%s, %s, %s, %s, %s) returning id",
            (user_id, f"plan_{tier}", tier, status, f"sub_{uuid.uuid4().hex[:14]}"),
        ).fetchone()
        assert row is not None
        return UUID(str(row[0]))

    def charge(self, subscription_id: UUID, tier: str, cents: int, when: datetime, currency: str = "USD") -> None:
        self.conn.execute(
            "insert into public.subscription_charges (subscription_id, tier, provider_payment_id, amount, currency,"
            " charged_at) values (%s, %s, %s, %s, %s, %s)",
            (subscription_id, tier, f"pay_{uuid.uuid4().hex[:14]}", cents, currency, when),
        )


@pytest.fixture(scope="module")
def seeded(analytics_database: str) -> dict[str, UUID]:
    with psycopg.connect(analytics_database, autocommit=True) as conn:
        seed = Seed(conn)
        old = seed.user(at(1, month=2), "free")  # before the range
        pro = seed.user(at(2), "pro")
        ent = seed.user(at(3), "enterprise")
        seed.user(at(4), "free")  # new in the range, never active
        late = seed.user(at(10), "free")  # after the range
        admin = seed.user(at(1, month=1), "free")

        # Model cost per day is (i + 1) * 0.001 on day i of the range: a straight line.
        seed.usage(old, at(28, month=2), "model/a", tokens=(1, 1), cost="0.5")  # before the range
        seed.usage(old, at(1, 0), "model/a", tokens=(10, 5), cost="0.001")
        seed.usage(old, at(2, 1), "model/a", tokens=(10, 10), cost="0.0005")
        seed.usage(pro, at(2, 23), "model/b", tokens=(100, 50), cost="0.0015")
        seed.usage(pro, at(3), "model/b", tokens=(200, 100), cost="0.003")
        seed.usage(ent, at(4), "model/c", tokens=(1000, 500), cost="0.004")
        seed.usage(ent, at(5), "model/c", tokens=(600, 400), cost="0.002")
        seed.usage(pro, at(5, 23), "model/b", tokens=(50, 50), cost="0.003")
        seed.usage(late, at(10), "model/a", tokens=(5, 5), cost="0.25")  # after the range

        s_pro = seed.subscription(pro, "pro", "active")
        s_ent = seed.subscription(ent, "enterprise", "active")
        s_old = seed.subscription(old, "pro", "cancelled")
        # Charged per day: i * 10.00 USD on day i (a straight line again).
        seed.charge(s_pro, "pro", 1000, at(2))
        seed.charge(s_pro, "pro", 2000, at(3))
        seed.charge(s_ent, "enterprise", 3000, at(4))
        seed.charge(s_ent, "enterprise", 4000, at(5))
        seed.charge(s_pro, "pro", 99900, at(3), currency="INR")  # not in USD figures
        seed.charge(s_old, "pro", 999, at(15, month=2))  # before the range
    return {"admin": admin}


def test_every_figure_matches_the_known_dataset(analytics_database: str, seeded: dict[str, UUID]) -> None:
    with override_settings(database_url=SecretStr(analytics_database)) as settings:
        db = Database(settings)
        try:
            token = token_for(seeded["admin"], extra_claims={"app_metadata": {"role": "admin"}})
            admin = authenticate(f"Bearer {token}")
            figures = analytics(db, admin, AnalyticsQuery(from_=FIRST, to=LAST)).model_dump(
                mode="json", by_alias=True
            )
        finally:
            db.close()

    assert (figures["from"], figures["to"]) == ("2026-03-01", "2026-03-05")
    # admin, old, pro, ent and the idle one exist by the end; pro, ent and idle signed up in it; old, pro, ent
    # used it
    assert figures["users"] == {"total": 5, "new": 3, "active": 3}
    assert figures["messages_by_day"] == [
        {"day": "2026-03-01", "messages": 1, "tokens": 15, "cost": "0.001"},
        {"day": "2026-03-02", "messages": 2, "tokens": 170, "cost": "0.002"},
        {"day": "2026-03-03", "messages": 1, "tokens": 300, "cost": "0.003"},
        {"day": "2026-03-04", "messages": 1, "tokens": 1500, "cost": "0.004"},
        {"day": "2026-03-05", "messages": 2, "tokens": 1100, "cost": "0.005"},
    ]
    assert figures["cost_by_model"] == [
        {"model": "model/b", "messages": 3, "tokens": 550, "cost": "0.0075"},
        {"model": "model/c", "messages": 2, "tokens": 2500, "cost": "0.006"},
        {"model": "model/a", "messages": 2, "tokens": 35, "cost": "0.0015"},
    ]
    # MRR: Pro's plan price 9.99; Enterprise is custom-priced: its latest charge, 40.00
    assert figures["revenue"] == {
        "currency": "USD",
        "mrr": "49.99",
        "by_tier": [
            {"tier": "pro", "active_subscriptions": 1, "mrr": "9.99", "charged": "30", "charges": 2},
            {"tier": "enterprise", "active_subscriptions": 1, "mrr": "40", "charged": "70", "charges": 2},
        ],
    }
    assert figures["margin_by_tier"] == [
        {"tier": "free", "revenue": "0", "cost": "0.0015", "margin": "-0.0015"},
        {"tier": "pro", "revenue": "30", "cost": "0.0075", "margin": "29.9925"},
        {"tier": "enterprise", "revenue": "70", "cost": "0.006", "margin": "69.994"},
    ]
    # The lines continue: cost (k + 1) * 0.001 and revenue 10 * k for k = 5..34
    assert figures["forecast"]["cost_next_30d"] == "0.615"
    assert figures["forecast"]["revenue_next_30d"] == "5850"
    assert figures["forecast"]["method"].startswith("least-squares linear trend")


def test_an_empty_range_has_zero_days_and_no_models(analytics_database: str, seeded: dict[str, UUID]) -> None:
    with override_settings(database_url=SecretStr(analytics_database)) as settings:
        db = Database(settings)
        try:
            admin = authenticate(
                f"Bearer {token_for(seeded['admin'], extra_claims={'app_metadata': {'role': 'admin'}})}"
            )
            figures = analytics(db, admin, AnalyticsQuery(from_=date(2025, 6, 1), to=date(2025, 6, 2)))
        finally:
            db.close()
    assert [(d.messages, d.cost) for d in figures.messages_by_day] == [(0, Decimal(0)), (0, Decimal(0))]
    assert figures.cost_by_model == []
    assert (figures.users.total, figures.users.new, figures.users.active) == (0, 0, 0)
    assert figures.forecast.cost_next_30d == 0


def test_the_forecast_is_the_least_squares_line_floored_at_zero() -> None:
    assert linear_forecast([]) == 0
    assert linear_forecast([Fraction(3)]) == 90  # one point: that value every day
    assert linear_forecast([Fraction(2), Fraction(2), Fraction(2)], days=2) == 4
    # falling 10 a day from 40: 0 on day 4, floored below that
    assert linear_forecast([Fraction(40), Fraction(30), Fraction(20)], days=3) == 10
