"""Data layer of workspace credits: named SQL, typed rows (supabase/migrations/20261126000000_credits.sql).

Reads run in the caller's user transaction under RLS (the balance: members; the ledger and the usage:
admins and owners; orders: owners). Reserve, settle and refund are security definer functions that act
for a member of the workspace or for the service role; purchases, refunds, grants and adjustments are the
service's (supabase/migrations/20261128030000_credit_refunds.sql for refunds and adjustments).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

ACCOUNT = """
select c.balance, c.reserved, c.low_balance_threshold from public.workspace_credits c
where c.workspace_id = %s"""

RESERVE = "select oneai_private.reserve_credits(%s, %s) as answer"
SETTLE = "select oneai_private.settle_credits(%s, %s, %s, %s, %s) as answer"
REFUND = "select oneai_private.refund_credits(%s) as released"
RELEASE_STALE = "select oneai_private.release_stale_credit_reservations(make_interval(secs => %s), %s) as n"
APPLY_PURCHASE = "select oneai_private.apply_credit_purchase(%s, %s, %s, %s) as answer"
GRANT = "select oneai_private.grant_credits(%s, %s, %s, %s) as answer"
APPLY_REFUND = "select oneai_private.apply_credit_refund(%s, %s, %s, %s) as answer"
ADJUST = "select oneai_private.adjust_credits(%s, %s, %s, %s) as answer"

INSERT_ORDER = """
insert into public.credit_orders (razorpay_order_id, workspace_id, amount, amount_paise, currency, created_by)
values (%s, %s, %s, %s, 'INR', (select auth.uid()))"""

PERSONAL_WORKSPACE = "select w.id from public.workspaces w where w.owner_id = %s and w.personal"

_TRANSACTION_COLUMNS = """t.id, t.type, t.amount, t.balance_after, t.razorpay_order_id, t.razorpay_payment_id,
  t.razorpay_refund_id, t.reservation_id, t.usage_record_id, t.cost_usd, t.usd_inr_rate, t.markup, t.shortfall, t.actor_id, t.reason,
  t.created_at"""
LIST_TRANSACTIONS = f"""
select {_TRANSACTION_COLUMNS} from public.credit_transactions t
where t.workspace_id = %(workspace)s
  and (%(type)s::text is null or t.type = %(type)s)
  and (%(after_created)s::timestamptz is null or (t.created_at, t.id) < (%(after_created)s, %(after_id)s::uuid))
order by t.created_at desc, t.id desc
limit %(limit)s"""

# The workspace's usage records (its chatbots' replies) grouped, with what their settled usage transactions
# took (`credits`). `provider_key`: the id of the workspace's own key that served (usage_records
# .provider_key_id), or "platform" for the platform's OpenRouter account (and for a key since deleted).
# A usage transaction without a usage record counts too, so the breakdown always adds up to the ledger's
# usage: a reply settled on its own after its save was refused (oneai.chat.turn.finish_turn,
# oneai.widget.chat) has none. It is a message of the chatbot `none`, the model `unknown`, the day of the
# transaction, the `platform` account (credits paid it).
USAGE_GROUPS: Final[dict[str, str]] = {
    "chatbot": "coalesce(u.chatbot_id::text, 'none')",
    "model": "coalesce(u.model_id, 'unknown')",
    "day": "to_char(coalesce(u.created_at, t.created_at) at time zone 'UTC', 'YYYY-MM-DD')",
    "provider_key": "coalesce(u.provider_key_id::text, 'platform')",
}
_USAGE = """
with u as (
  select * from public.usage_records r
  where r.workspace_id = %(workspace)s
    and (%(from)s::timestamptz is null or r.created_at >= %(from)s)
    and (%(to)s::timestamptz is null or r.created_at < %(to)s)
), t as (
  select * from public.credit_transactions c where c.workspace_id = %(workspace)s and c.type = 'usage'
)
select {group} as key, count(*) as messages, coalesce(sum(u.prompt_tokens), 0) as prompt_tokens,
  coalesce(sum(u.completion_tokens), 0) as completion_tokens, coalesce(sum(u.cost), 0) as cost_usd,
  coalesce(sum(-t.amount), 0) as credits
from u full join t on t.usage_record_id = u.id
-- a record in the range with its transaction; a transaction without a record by its own time
where u.id is not null
   or (t.usage_record_id is null
       and (%(from)s::timestamptz is null or t.created_at >= %(from)s)
       and (%(to)s::timestamptz is null or t.created_at < %(to)s))
group by 1
order by 1"""


class AccountRow(BaseModel):
    balance: Decimal
    reserved: Decimal
    low_balance_threshold: Decimal


class TransactionRow(BaseModel):
    id: UUID
    type: str
    amount: Decimal
    balance_after: Decimal
    razorpay_order_id: str | None
    razorpay_payment_id: str | None
    razorpay_refund_id: str | None
    reservation_id: UUID | None
    usage_record_id: UUID | None
    cost_usd: Decimal | None
    usd_inr_rate: Decimal | None
    markup: Decimal | None
    shortfall: Decimal | None
    actor_id: UUID | None
    reason: str | None
    created_at: datetime


class UsageRow(BaseModel):
    key: str
    messages: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    credits: Decimal


def _answer(conn: Connection, statement: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return row["answer"]


def account(conn: Connection, workspace_id: UUID) -> AccountRow | None:
    with conn.cursor(row_factory=class_row(AccountRow)) as cur:
        return cur.execute(ACCOUNT, (workspace_id,)).fetchone()


def reserve(conn: Connection, workspace_id: UUID, amount: Decimal) -> dict[str, Any]:
    answer: dict[str, Any] = _answer(conn, RESERVE, (workspace_id, amount))
    return answer


def settle(
    conn: Connection,
    reservation_id: UUID,
    *,
    cost_usd: Decimal,
    rate: Decimal,
    markup: Decimal,
    usage_record_id: UUID | None,
) -> dict[str, Any]:
    answer: dict[str, Any] = _answer(conn, SETTLE, (reservation_id, cost_usd, rate, markup, usage_record_id))
    return answer


def refund(conn: Connection, reservation_id: UUID) -> bool:
    row = conn.execute(REFUND, (reservation_id,)).fetchone()
    return bool(row and row["released"])


def release_stale(conn: Connection, *, older_than_seconds: float, batch: int) -> int:
    row = conn.execute(RELEASE_STALE, (older_than_seconds, batch)).fetchone()
    return int(row["n"]) if row else 0


def insert_order(
    conn: Connection, *, order_id: str, workspace_id: UUID, amount: Decimal, amount_paise: int
) -> None:
    conn.execute(INSERT_ORDER, (order_id, workspace_id, amount, amount_paise))


def apply_purchase(
    conn: Connection, *, order_id: str, payment_id: str | None, amount_paise: int | None, currency: str | None
) -> dict[str, Any]:
    answer: dict[str, Any] = _answer(conn, APPLY_PURCHASE, (order_id, payment_id, amount_paise, currency))
    return answer


def grant(
    conn: Connection, workspace_id: UUID, amount: Decimal, reason: str, actor_id: UUID | None
) -> dict[str, Any] | None:
    answer: dict[str, Any] | None = _answer(conn, GRANT, (workspace_id, amount, reason, actor_id))
    return answer


def apply_refund(
    conn: Connection, *, refund_id: str, payment_id: str, amount_paise: int, currency: str | None
) -> dict[str, Any]:
    answer: dict[str, Any] = _answer(conn, APPLY_REFUND, (refund_id, payment_id, amount_paise, currency))
    return answer


def adjust(
    conn: Connection, workspace_id: UUID, amount: Decimal, reason: str, actor_id: UUID
) -> dict[str, Any] | None:
    answer: dict[str, Any] | None = _answer(conn, ADJUST, (workspace_id, amount, reason, actor_id))
    return answer


def personal_workspace(conn: Connection, user_id: UUID) -> UUID | None:
    row = conn.execute(PERSONAL_WORKSPACE, (user_id,)).fetchone()
    return None if row is None else UUID(str(row["id"]))


def list_transactions(
    conn: Connection,
    workspace_id: UUID,
    *,
    type: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[TransactionRow]:
    params = {
        "workspace": workspace_id,
        "type": type,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(TransactionRow)) as cur:
        return cur.execute(LIST_TRANSACTIONS, params).fetchall()


def usage(
    conn: Connection, workspace_id: UUID, *, group_by: str, start: datetime | None, end: datetime | None
) -> list[UsageRow]:
    statement = _USAGE.format(group=USAGE_GROUPS[group_by])  # one of the fixed expressions above
    with conn.cursor(row_factory=class_row(UsageRow)) as cur:
        return cur.execute(statement, {"workspace": workspace_id, "from": start, "to": end}).fetchall()
