"""Workspace credits (API.md "Credits"; supabase/migrations/20261126000000_credits.sql explains the rules).

**A reply paid from credits** (the chat turn of a chatbot calls these; it runs them in its own short
transactions, the caller's user transaction for a member or a service transaction for a widget visitor):

    amount = estimate_reply_cost(settings, prompt_price=..., completion_price=..., prompt_tokens=..., max_tokens=...)
    reservation = reserve(conn, workspace_id, amount)        # 402 INSUFFICIENT_CREDITS, 404
    ... call the model ...
    settlement = settle(conn, settings, reservation.id, cost_usd=usage.cost, usage_record_id=...)
    announce_low_balance(publisher, settlement.low_balance)   # after the commit
    # or, when the upstream failed before the first token:
    refund(conn, reservation.id)

The reservation is one conditional UPDATE (never over the balance, however many replies race); the settle
takes the real cost (OpenRouter's USD cost x ONEAI_USD_INR_RATE x ONEAI_CREDITS_MARKUP, both recorded on
the ledger row), at most what the balance has beyond the other holds (the rest is the row's `shortfall`).

**Routes**: the balance (members), the ledger and the usage breakdown (admins and owners), a purchase
(owners: billing is theirs) through a Razorpay Order that the webhooks function credits once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final
from uuid import UUID

import psycopg.errors

from oneai.auth import Principal
from oneai.billing.razorpay_client import RazorpayClient
from oneai.config import Settings
from oneai.credits.models import (
    CURRENCY,
    CheckoutPrefill,
    Credits,
    CreditsCheckout,
    CreditTransaction,
    CreditUsage,
    TransactionQuery,
    UsageGroupRow,
    UsageQuery,
)
from oneai.db import credits as repo
from oneai.db.connection import Connection, Database
from oneai.errors import InsufficientCreditsError, NotFoundError, ValidationError, field_error
from oneai.events import EventPublisher
from oneai.logging import logger
from oneai.money import balance_decimal, plain_decimal
from oneai.observability import emit_metric
from oneai.openrouter.catalog import OpenRouterModel
from oneai.pagination import Page, decode_cursor, page_of
from oneai.workspaces.service import NOT_FOUND, require_role

SOURCE: Final = "oneai.credits"
CREDITS_LOW: Final = "CreditsLow"
PAISE: Final = Decimal(100)
CENT: Final = Decimal("0.01")
WELCOME_REASON: Final = "welcome"
# A hold older than this belongs to a reply whose function died before settling (replies stop at
# ONEAI_REPLY_TIME_LIMIT, 280 s by default, inside a 300 s function).
STALE_RESERVATION_SECONDS: Final = 900


@dataclass(frozen=True, slots=True)
class Reservation:
    id: UUID
    workspace_id: UUID
    amount: Decimal
    balance: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class LowBalance:
    workspace_id: UUID
    owner_id: UUID
    balance: Decimal
    threshold: Decimal
    crossing: int


@dataclass(frozen=True, slots=True)
class Settlement:
    transaction_id: UUID
    workspace_id: UUID
    charged: Decimal
    cost: Decimal
    shortfall: Decimal
    balance: Decimal
    low_balance: LowBalance | None


# --- money ---------------------------------------------------------------------------------------------


def credits_for_cost(settings: Settings, cost_usd: Decimal) -> Decimal:
    """What a USD cost takes from a balance: cost x rate x markup (negative costs count as 0: OpenRouter's
    router models list price -1), before the ledger's rounding up to the millionth of a rupee."""
    return max(cost_usd, Decimal(0)) * settings.usd_inr_rate * settings.credits_markup


def estimate_reply_cost(
    settings: Settings,
    *,
    prompt_price: Decimal | None,
    completion_price: Decimal | None,
    prompt_tokens: int,
    max_tokens: int,
) -> Decimal:
    """The most a reply may cost, in INR rounded up to the paisa: the prompt's tokens at the model's prompt
    price plus `max_tokens` at its completion price (OpenRouter's USD per token, as the catalog lists them),
    converted like a settle; never under ONEAI_CREDITS_MIN_RESERVE (a model without known prices reserves
    just that)."""
    usd = max(prompt_price or Decimal(0), Decimal(0)) * max(prompt_tokens, 0) + max(
        completion_price or Decimal(0), Decimal(0)
    ) * max(max_tokens, 0)
    inr = credits_for_cost(settings, usd).quantize(CENT, rounding=ROUND_CEILING)
    return max(inr, settings.credits_min_reserve)


def estimate_for_model(
    settings: Settings, model: OpenRouterModel, *, prompt_tokens: int, max_tokens: int
) -> Decimal:
    """`estimate_reply_cost` with the prices the catalog (`oneai.openrouter.catalog`) lists for `model`."""
    return estimate_reply_cost(
        settings,
        prompt_price=model.pricing.prompt,
        completion_price=model.pricing.completion,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
    )


# --- a reply's reservation -----------------------------------------------------------------------------


def reserve(conn: Connection, workspace_id: UUID, amount: Decimal) -> Reservation:
    """Hold `amount` INR of the workspace's credits for one reply. 402 INSUFFICIENT_CREDITS (details
    `balance` and `needed`) when the balance beyond the running replies' holds cannot cover it; 404 when
    the caller is not a member of a live workspace of that id."""
    answer = repo.reserve(conn, workspace_id, amount)
    refused = answer.get("refused")
    if refused == "insufficient_credits":
        emit_metric("CreditsRefused", 1)
        raise InsufficientCreditsError(
            details={
                "balance": balance_decimal(Decimal(str(answer["available"]))),
                "needed": balance_decimal(amount),
            }
        )
    if refused is not None:
        raise NotFoundError(NOT_FOUND)
    return Reservation(
        id=UUID(answer["reservation_id"]),
        workspace_id=workspace_id,
        amount=amount,
        balance=Decimal(str(answer["balance"])),
        available=Decimal(str(answer["available"])),
    )


def settle(
    conn: Connection,
    settings: Settings,
    reservation_id: UUID,
    *,
    cost_usd: Decimal,
    usage_record_id: UUID | None = None,
) -> Settlement | None:
    """Take the reply's real cost and release its hold (None: the reservation was not held any more, e.g.
    settled already; nothing changed)."""
    answer = repo.settle(
        conn,
        reservation_id,
        cost_usd=max(cost_usd, Decimal(0)),
        rate=settings.usd_inr_rate,
        markup=settings.credits_markup,
        usage_record_id=usage_record_id,
    )
    return settlement_of(answer)


def settlement_of(answer: dict[str, Any]) -> Settlement | None:
    """`settle_credits`' answer (the settle call's, or the chat turn's finish call's) as a Settlement (None:
    the reservation was not held any more)."""
    if answer.get("refused") is not None:
        return None
    settlement = Settlement(
        transaction_id=UUID(answer["transaction_id"]),
        workspace_id=UUID(answer["workspace_id"]),
        charged=Decimal(str(answer["charged"])),
        cost=Decimal(str(answer["cost"])),
        shortfall=Decimal(str(answer["shortfall"])),
        balance=Decimal(str(answer["balance"])),
        low_balance=low_balance_of(answer),
    )
    if settlement.shortfall > 0:
        logger.warning(
            "credits: a reply cost more than the balance could cover",
            extra={"workspace_id": str(settlement.workspace_id), "shortfall": plain_decimal(settlement.shortfall)},
        )
    return settlement


def low_balance_of(answer: dict[str, Any]) -> LowBalance | None:
    """The crossing's notice in a debit's answer (a settle, a refund, an adjustment), or None: that debit
    did not take the balance under the threshold."""
    low = answer.get("low_balance")
    if low is None:
        return None
    return LowBalance(
        workspace_id=UUID(low["workspace_id"]),
        owner_id=UUID(low["owner_id"]),
        balance=Decimal(str(low["balance"])),
        threshold=Decimal(str(low["threshold"])),
        crossing=int(low["crossing"]),
    )


def refund(conn: Connection, reservation_id: UUID) -> bool:
    """Give a held reservation back whole (the upstream failed before the first token)."""
    return repo.refund(conn, reservation_id)


def announce_low_balance(publisher: EventPublisher, low: LowBalance | None) -> bool:
    """After the commit of a debit that crossed the threshold downward (a settle, a refund, an admin's
    adjustment): its one event (the notifications function emails the workspace's owner, once per crossing)."""
    if low is None:
        return False
    detail = {
        "user_id": str(low.owner_id),
        "workspace_id": str(low.workspace_id),
        "balance": balance_decimal(low.balance),
        "threshold": balance_decimal(low.threshold),
        "crossing": low.crossing,
    }
    emit_metric("CreditsLow", 1)
    try:
        return publisher.publish(SOURCE, CREDITS_LOW, detail)
    except Exception as exc:  # best effort: the debit stands either way
        logger.warning("CreditsLow not published", extra={"error_type": type(exc).__name__})
        return False


def release_stale_reservations(db: Database, *, batch: int = 500) -> int:
    """The service's sweep: holds of replies that never settled are given back."""
    with db.service_transaction() as conn:
        return repo.release_stale(conn, older_than_seconds=STALE_RESERVATION_SECONDS, batch=batch)


# --- routes --------------------------------------------------------------------------------------------


def get_credits(conn: Connection, workspace_id: UUID) -> Credits:
    require_role(conn, workspace_id, "viewer")
    account = repo.account(conn, workspace_id)
    if account is None:
        raise NotFoundError(NOT_FOUND)
    return Credits(balance=account.balance, low_balance_threshold=account.low_balance_threshold)


def list_transactions(conn: Connection, workspace_id: UUID, query: TransactionQuery) -> Page[CreditTransaction]:
    require_role(conn, workspace_id, "admin")
    after = None
    if query.cursor:
        keys = decode_cursor(query.cursor, {"created_at": datetime.fromisoformat, "id": UUID})
        after = (keys["created_at"], keys["id"])
    rows = repo.list_transactions(conn, workspace_id, type=query.type, after=after, limit=query.limit + 1)
    items = [CreditTransaction.model_validate(row.model_dump()) for row in rows]
    return page_of(items, query.limit, lambda t: {"created_at": t.created_at.isoformat(), "id": str(t.id)})


def usage(conn: Connection, workspace_id: UUID, query: UsageQuery) -> CreditUsage:
    require_role(conn, workspace_id, "admin")
    rows = repo.usage(conn, workspace_id, group_by=query.group_by, start=query.from_, end=query.to)
    return CreditUsage(
        group_by=query.group_by,
        from_=query.from_,
        to=query.to,
        items=[UsageGroupRow.model_validate(row.model_dump()) for row in rows],
    )


USAGE_CSV_COLUMNS: Final = ("key", "messages", "prompt_tokens", "completion_tokens", "cost_usd", "credits_inr")


def usage_csv(report: CreditUsage) -> str:
    """The breakdown as CSV: a header row, then one row per group (money as plain decimals)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow((report.group_by, *USAGE_CSV_COLUMNS[1:]))
    for row in report.items:
        writer.writerow(
            (
                _csv_safe(row.key),
                row.messages,
                row.prompt_tokens,
                row.completion_tokens,
                plain_decimal(row.cost_usd),
                balance_decimal(row.credits),
            )
        )
    return buffer.getvalue()


# A spreadsheet runs a cell that starts with one of these as a formula (as oneai.account.service guards).
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value: str) -> str:
    """A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return) is quoted with
    a leading `'`."""
    return f"'{value}" if value[:1] in _FORMULA_STARTS else value


def check_purchase_amount(settings: Settings, amount: Decimal) -> int:
    """The amount in paise, if within ONEAI_CREDITS_MIN_PURCHASE..ONEAI_CREDITS_MAX_PURCHASE (422 otherwise)."""
    low, high = settings.credits_min_purchase, settings.credits_max_purchase
    if not low <= amount <= high:
        message = f"must be between {balance_decimal(low)} and {balance_decimal(high)} INR"
        raise ValidationError(
            "The amount is outside the allowed range",
            details={"errors": [field_error("amount", message, "amount_range")]},
        )
    return int((amount * PAISE).to_integral_exact())


def purchase(
    db: Database,
    principal: Principal,
    razorpay_client: Callable[[], RazorpayClient],
    workspace_id: UUID,
    amount: Decimal,
) -> CreditsCheckout:
    """A Razorpay Order for `amount` INR of credits (owners), and what Checkout needs. Nothing is credited
    here: the webhooks function credits the balance once Razorpay says the order is paid. The client is
    asked for only once the caller may buy (a stranger is 404 even where billing is not configured)."""
    settings = db.settings
    with db.user_transaction(principal) as conn:
        require_role(conn, workspace_id, "owner")
        paise = check_purchase_amount(settings, amount)
    razorpay = razorpay_client()
    order = razorpay.create_order(
        amount_paise=paise,
        currency=CURRENCY,
        receipt=f"credits-{workspace_id.hex[:24]}",
        notes={"purpose": "credits", "workspace_id": str(workspace_id), "user_id": str(principal.user_id)},
    )
    with db.user_transaction(principal) as conn:
        require_role(conn, workspace_id, "owner")
        repo.insert_order(conn, order_id=order.id, workspace_id=workspace_id, amount=amount, amount_paise=paise)
    logger.info(
        "credits order created",
        extra={"workspace_id": str(workspace_id), "order_id": order.id, "amount_paise": paise},
    )
    return CreditsCheckout(
        order_id=order.id,
        razorpay_key_id=razorpay.key_id,
        amount=order.amount,
        credits=amount,
        name="OneAI",
        description=f"{balance_decimal(amount)} INR of workspace credits",
        prefill=CheckoutPrefill(email=principal.email),
    )


# --- grants, adjustments, refunds (purchases and refunds come from the webhooks function: oneai.billing.webhooks)


def grant(conn: Connection, workspace_id: UUID, amount: Decimal, reason: str, actor_id: UUID) -> dict[str, Any]:
    """An admin's grant, in the admin's service transaction; 404 for no such workspace."""
    try:
        answer = repo.grant(conn, workspace_id, amount, reason, actor_id)
    except psycopg.errors.ForeignKeyViolation:
        raise NotFoundError("No such workspace") from None
    if answer is None:
        raise NotFoundError("No such workspace")
    return answer


def adjust(conn: Connection, workspace_id: UUID, amount: Decimal, reason: str, actor_id: UUID) -> dict[str, Any]:
    """An admin's adjustment (signed), in the admin's service transaction: 404 for no such workspace, 422
    when a debit is more than the balance has beyond the running replies' holds (nothing changes)."""
    try:
        answer = repo.adjust(conn, workspace_id, amount, reason, actor_id)
    except psycopg.errors.ForeignKeyViolation:
        raise NotFoundError("No such workspace") from None
    if answer is None:
        raise NotFoundError("No such workspace")
    if answer.get("refused") is not None:
        available = balance_decimal(Decimal(str(answer["available"])))
        raise ValidationError(
            "The adjustment would take more than the available balance",
            details={
                "errors": [field_error("amount", f"a debit may take at most {available} INR", "amount_range")],
                "available": available,
            },
        )
    return answer


def apply_refund(
    conn: Connection, *, refund_id: str, payment_id: str, amount_paise: int, currency: str | None
) -> dict[str, Any]:
    """A processed Razorpay refund of a payment that bought credits (the webhooks function's service
    transaction): the refunded amount is debited once per refund id, never below zero (the rest is the row's
    `shortfall`, logged for the team). Answers `oneai_private.apply_credit_refund`'s outcome."""
    answer = repo.apply_refund(
        conn, refund_id=refund_id, payment_id=payment_id, amount_paise=amount_paise, currency=currency
    )
    shortfall = Decimal(str(answer.get("shortfall") or 0))
    if answer.get("outcome") == "refunded" and shortfall > 0:
        emit_metric("CreditsRefundShortfall", 1)
        logger.warning(
            "credits: a refund took more than the balance could cover",
            extra={
                "workspace_id": str(answer.get("workspace_id")),
                "refund_id": refund_id,
                "shortfall": plain_decimal(shortfall),
            },
        )
    return answer


def grant_welcome(db: Database, user_id: UUID) -> bool:
    """ONEAI_WELCOME_CREDITS (when > 0) to a new user's personal workspace, once (a `grant` with reason
    `welcome`). Called when the product learns of the new user (their first request); never raises."""
    amount = db.settings.welcome_credits
    if amount <= 0:
        return False
    try:
        with db.service_transaction() as conn:
            workspace_id = repo.personal_workspace(conn, user_id)
            if workspace_id is None:
                return False
            return repo.grant(conn, workspace_id, amount, WELCOME_REASON, None) is not None
    except Exception as exc:  # the user's request succeeded; the next first request retries
        logger.warning("welcome credits not granted", extra={"error_type": type(exc).__name__})
        return False
