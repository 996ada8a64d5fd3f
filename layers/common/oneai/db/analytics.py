"""Data layer of the admin analytics: one query per figure, each on indexed columns, as the service role.

Usage figures read the daily rollup (`usage_daily`, primary key (day, model_id, subscription_tier,
shard)) and `usage_active_days` (primary key (day, user_id)), which triggers keep as usage is recorded
(migration 20261122040000_admin.sql), so a range reads a few rows per day whatever the number of
usage records. Users read `idx_users_created`, charges `idx_subscription_charges_charged`, MRR the active
subscriptions. Days are UTC days; a range is [first, last], both included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg.rows import class_row

from oneai.db.connection import Connection

USER_COUNTS = """
select
  (select count(*) from public.users u where u.created_at < %(end)s) as total,
  (select count(*) from public.users u where u.created_at >= %(start)s and u.created_at < %(end)s) as new,
  (select count(distinct a.user_id) from public.usage_active_days a
   where a.day between %(first)s and %(last)s) as active"""

USAGE_BY_DAY = """
select g.day::date as day,
       coalesce(sum(d.messages), 0)::bigint as messages,
       coalesce(sum(d.prompt_tokens + d.completion_tokens), 0)::bigint as tokens,
       coalesce(sum(d.cost), 0) as cost
from generate_series(%(first)s::date, %(last)s::date, interval '1 day') g(day)
left join public.usage_daily d on d.day = g.day::date
group by g.day
order by g.day"""

USAGE_BY_MODEL = """
select d.model_id as model,
       sum(d.messages)::bigint as messages,
       sum(d.prompt_tokens + d.completion_tokens)::bigint as tokens,
       sum(d.cost) as cost
from public.usage_daily d
where d.day between %(first)s and %(last)s
group by d.model_id
order by sum(d.cost) desc, d.model_id"""

COST_BY_TIER = """
select d.subscription_tier as tier, sum(d.cost) as cost
from public.usage_daily d
where d.day between %(first)s and %(last)s
group by d.subscription_tier"""

CHARGES_BY_TIER = """
select c.tier, count(*) as charges, sum(c.amount)::bigint as amount
from public.subscription_charges c
where c.charged_at >= %(start)s and c.charged_at < %(end)s and c.currency = %(currency)s
group by c.tier"""

CHARGES_BY_DAY = """
select g.day::date as day, coalesce(sum(c.amount), 0)::bigint as amount
from generate_series(%(first)s::date, %(last)s::date, interval '1 day') g(day)
left join public.subscription_charges c
  on c.charged_at >= g.day and c.charged_at < g.day + interval '1 day' and c.currency = %(currency)s
group by g.day
order by g.day"""

# Monthly revenue of the subscriptions active now: the plan price of their tier, or for a custom-priced
# tier (no price) the subscription's latest charge in the currency.
MRR_BY_TIER = """
select s.tier, count(*) as subscriptions,
       coalesce(sum(coalesce(p.price, latest.amount, 0)), 0)::bigint as amount
from public.subscriptions s
left join unnest(%(tiers)s::text[], %(prices)s::bigint[]) as p(tier, price) on p.tier = s.tier
left join lateral (
  select c.amount from public.subscription_charges c
  where c.subscription_id = s.id and c.currency = %(currency)s
  order by c.charged_at desc
  limit 1
) latest on p.price is null
where s.status = 'active'
group by s.tier"""


@dataclass(frozen=True, slots=True)
class UserCountsRow:
    total: int
    new: int
    active: int


@dataclass(frozen=True, slots=True)
class DayRow:
    day: date
    messages: int
    tokens: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class ModelRow:
    model: str
    messages: int
    tokens: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class TierCostRow:
    tier: str
    cost: Decimal


@dataclass(frozen=True, slots=True)
class TierChargesRow:
    tier: str
    charges: int
    amount: int


@dataclass(frozen=True, slots=True)
class DayChargesRow:
    day: date
    amount: int


@dataclass(frozen=True, slots=True)
class TierMrrRow:
    tier: str
    subscriptions: int
    amount: int


@dataclass(frozen=True, slots=True)
class Range:
    first: date
    last: date
    # [start, end): the first day's 00:00 UTC to the day after the last.
    start: datetime
    end: datetime

    def params(self) -> dict[str, object]:
        return {"first": self.first, "last": self.last, "start": self.start, "end": self.end}


def user_counts(conn: Connection, days: Range) -> UserCountsRow:
    with conn.cursor(row_factory=class_row(UserCountsRow)) as cur:
        row = cur.execute(USER_COUNTS, days.params()).fetchone()
    assert row is not None
    return row


def usage_by_day(conn: Connection, days: Range) -> list[DayRow]:
    with conn.cursor(row_factory=class_row(DayRow)) as cur:
        return cur.execute(USAGE_BY_DAY, days.params()).fetchall()


def usage_by_model(conn: Connection, days: Range) -> list[ModelRow]:
    with conn.cursor(row_factory=class_row(ModelRow)) as cur:
        return cur.execute(USAGE_BY_MODEL, days.params()).fetchall()


def cost_by_tier(conn: Connection, days: Range) -> list[TierCostRow]:
    with conn.cursor(row_factory=class_row(TierCostRow)) as cur:
        return cur.execute(COST_BY_TIER, days.params()).fetchall()


def charges_by_tier(conn: Connection, days: Range, currency: str) -> list[TierChargesRow]:
    with conn.cursor(row_factory=class_row(TierChargesRow)) as cur:
        return cur.execute(CHARGES_BY_TIER, {**days.params(), "currency": currency}).fetchall()


def charges_by_day(conn: Connection, days: Range, currency: str) -> list[DayChargesRow]:
    with conn.cursor(row_factory=class_row(DayChargesRow)) as cur:
        return cur.execute(CHARGES_BY_DAY, {**days.params(), "currency": currency}).fetchall()


def mrr_by_tier(conn: Connection, prices: Mapping[str, int | None], currency: str) -> list[TierMrrRow]:
    tiers = list(prices)
    params = {"tiers": tiers, "prices": [prices[t] for t in tiers], "currency": currency}
    with conn.cursor(row_factory=class_row(TierMrrRow)) as cur:
        return cur.execute(MRR_BY_TIER, params).fetchall()
