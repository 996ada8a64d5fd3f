"""Business analytics over a range of UTC days: users, usage per day and per model, revenue, margin by
tier, and a 30-day forecast. Each figure is one query (`oneai.db.analytics`); this module only combines
them.

- users: `total` who exist at the end of the range, `new` who signed up in it, `active` who used a model
  (at least one usage record) in it;
- messages_by_day: every day of the range (zeros included): replies, tokens (prompt + completion) and
  model cost;
- cost_by_model: the same per model that served the replies, costliest first;
- revenue: `mrr` now, from the subscriptions active now (their tier's plan price; a custom-priced tier
  counts its latest charge); `by_tier`: that MRR and the amounts charged in the range;
- margin_by_tier: per tier, the amounts charged in the range minus the model cost of the usage made on
  that tier in the range (the tier a usage record was made on is kept with it);
- forecast: least-squares linear trend of the range's daily series (model cost, charged amounts),
  extended over the 30 days after the range, each day's value floored at 0, summed.
Money is USD (the plans' currency; model costs are OpenRouter's USD): charges in other currencies are
not part of these figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Final

from oneai.admin import models
from oneai.admin.audit import admin_transaction
from oneai.auth import Principal
from oneai.db import analytics as repo
from oneai.db.connection import Database
from oneai.quota.tiers import PRICE_CURRENCY, TIER_NAMES, TIERS

FORECAST_DAYS: Final = 30
FORECAST_METHOD: Final = "least-squares linear trend of the range's daily series, next 30 days, floored at 0"
COST_PLACES: Final = Decimal("0.00000001")
MONEY_PLACES: Final = Decimal("0.01")


def _dollars(cents: int) -> Decimal:
    return Decimal(cents) / 100


def linear_forecast(series: Sequence[Fraction], days: int = FORECAST_DAYS) -> Fraction:
    """The sum over the `days` after the series of its least-squares line (x = 0, 1, ...), each day's
    value floored at 0. Exact (fractions). One point: that value every day; none: 0."""
    n = len(series)
    if n == 0:
        return Fraction(0)
    mean_x = Fraction(n - 1, 2)
    mean_y = sum(series, Fraction(0)) / n
    spread = sum(((x - mean_x) ** 2 for x in range(n)), Fraction(0))
    slope = (
        sum(((x - mean_x) * (y - mean_y) for x, y in enumerate(series)), Fraction(0)) / spread
        if spread
        else Fraction(0)
    )
    intercept = mean_y - slope * mean_x
    return sum((max(intercept + slope * x, Fraction(0)) for x in range(n, n + days)), Fraction(0))


def _rounded(value: Fraction, places: Decimal) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(places, rounding=ROUND_HALF_EVEN)


def analytics(db: Database, admin: Principal, query: models.AnalyticsQuery) -> models.Analytics:
    first, last = query.first_day, query.last_day
    days = repo.Range(
        first=first,
        last=last,
        start=datetime.combine(first, time(), tzinfo=UTC),
        end=datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
    )
    prices: dict[str, int | None] = {name: tier.price for name, tier in TIERS.items() if name != "free"}
    with admin_transaction(db, admin) as conn:
        users = repo.user_counts(conn, days)
        by_day = repo.usage_by_day(conn, days)
        by_model = repo.usage_by_model(conn, days)
        cost_by_tier = {row.tier: row.cost for row in repo.cost_by_tier(conn, days)}
        charged = {row.tier: row for row in repo.charges_by_tier(conn, days, PRICE_CURRENCY)}
        charged_by_day = repo.charges_by_day(conn, days, PRICE_CURRENCY)
        mrr = {row.tier: row for row in repo.mrr_by_tier(conn, prices, PRICE_CURRENCY)}

    paid_tiers = [t for t in TIER_NAMES if t != "free"]
    by_tier = [
        models.TierRevenue(
            tier=t,
            active_subscriptions=mrr[t].subscriptions if t in mrr else 0,
            mrr=_dollars(mrr[t].amount if t in mrr else 0),
            charged=_dollars(charged[t].amount if t in charged else 0),
            charges=charged[t].charges if t in charged else 0,
        )
        for t in paid_tiers
    ]
    margins = []
    for t in TIER_NAMES:
        revenue = _dollars(charged[t].amount) if t in charged else Decimal(0)
        cost = cost_by_tier.get(t, Decimal(0))
        margins.append(models.TierMargin(tier=t, revenue=revenue, cost=cost, margin=revenue - cost))

    cost_series = [Fraction(row.cost) for row in by_day]
    revenue_series = [Fraction(row.amount, 100) for row in charged_by_day]
    return models.Analytics(
        from_=first,
        to=last,
        users=models.UserCounts(total=users.total, new=users.new, active=users.active),
        messages_by_day=[
            models.DayFigures(day=r.day, messages=r.messages, tokens=r.tokens, cost=r.cost) for r in by_day
        ],
        cost_by_model=[
            models.ModelFigures(model=r.model, messages=r.messages, tokens=r.tokens, cost=r.cost) for r in by_model
        ],
        revenue=models.Revenue(
            currency=PRICE_CURRENCY, mrr=sum((r.mrr for r in by_tier), Decimal(0)), by_tier=by_tier
        ),
        margin_by_tier=margins,
        forecast=models.Forecast(
            method=FORECAST_METHOD,
            cost_next_30d=_rounded(linear_forecast(cost_series), COST_PLACES),
            revenue_next_30d=_rounded(linear_forecast(revenue_series), MONEY_PLACES),
        ),
    )
