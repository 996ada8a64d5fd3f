"""The billing API: plans, Razorpay subscriptions for Checkout, cancel, tier changes, invoices.

What is whose:
- This service asks Razorpay for things and records what Razorpay answered. It never changes a user's
  tier: the tier is granted and taken away by Razorpay's webhooks (`subscription.activated`,
  `subscription.charged`, `subscription.cancelled`, ...), which arrive at least once and in any order.
  The Checkout signature checked by `verify_checkout` is provisional evidence only.
- Reads of the caller's own rows run in the caller's transaction (under RLS); writes run in a service
  transaction, because `authenticated` may only read subscriptions (`oneai.db.subscriptions`).
- Razorpay is called with no transaction open. A Razorpay failure is an `UpstreamError` (502,
  `UPSTREAM_ERROR`) raised before anything is written, so our records stay as they were.

Tier changes (`update_subscription`) follow one rule. Razorpay can change the plan of a subscription in
place (its "update subscription" API, the SDK's `edit`) only while it is `authenticated` or `active`, and
refuses it for subscriptions paid with UPI, eMandate or cards issued in India. So:
1. an upgrade asks for the edit with `schedule_change_at="now"`, a downgrade with `"cycle_end"`;
2. when Razorpay refuses (`BAD_REQUEST_ERROR`), or the subscription is in another status, the change is
   made by replacement (`oneai.billing.replacement`): a new subscription for the new tier is created, its
   notes naming the user, the tier and the subscription it replaces, and stored linked to the old one; a
   downgrade's starts charging when the old paid cycle ends (`start_at`). The old one is NOT cancelled
   here: it keeps running until Razorpay activates the new one, whose webhook has it cancelled (now for an
   upgrade, at the end of the paid cycle for a downgrade). An abandoned Checkout changes nothing, and the
   sweep cancels the replacement later. The answer carries the new subscription's Checkout values, like
   create's, with `checkout_required: true`.
   While a replacement awaits activation, asking for its tier again answers the same Checkout (nothing
   new at Razorpay); asking for the tier in force drops the pending change (`reverted`: the replacement
   is cancelled at Razorpay now), unless its Checkout is done and the old subscription's cancel already
   owed (a downgrade set up for the cycle's end), or Razorpay says it was paid meanwhile: 409.

Every state has a way forward (the table in docs/api/billing.md): cancel ends the pending replacement
too, and a replacement whose old subscription has ended is the subscription in force itself
(`oneai.db.subscriptions`), so it can be cancelled or changed and create answers 409 naming it. Razorpay
is asked before each record, one subscription at a time, the replacement first: a failure part-way
leaves what was done recorded and the rest as it was, and a retry finds at Razorpay that a cancel it
answered too late for was made (`cancel_at_razorpay`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from pydantic import ValidationError as PydanticValidationError

from oneai.auth import Principal
from oneai.billing.models import (
    CancelRequest,
    CancelResult,
    CheckoutSession,
    CreateSubscriptionRequest,
    CurrentSubscription,
    HistoryEntry,
    Invoice,
    InvoiceList,
    PaymentMethodPortal,
    PlanList,
    ScheduledChange,
    SubscriptionView,
    UpdateRequest,
    UpdateResult,
    VerifyRequest,
    VerifyResult,
)
from oneai.billing.plans import is_upgrade, list_plans, plan_id_for, tier_for_plan
from oneai.billing.razorpay_client import (
    NOT_CONFIGURED_MESSAGE,
    PROVIDER,
    RazorpayClient,
    RazorpayRefusedError,
    RazorpaySubscription,
    ScheduleChangeAt,
    from_epoch,
)
from oneai.billing.replacement import ENDED_STATUSES, cancel_at_razorpay
from oneai.config import Settings
from oneai.db import subscriptions as repo
from oneai.db.connection import Connection, Database
from oneai.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
    UpstreamError,
)
from oneai.logging import logger
from oneai.pagination import PageRequest, decode_cursor, page_of
from oneai.quota.tiers import TierName
from oneai.timestamps import iso_z

# Razorpay needs a finite number of billing cycles: ten years of monthly ones.
TOTAL_BILLING_CYCLES: Final = 120
# Razorpay edits the plan of a subscription only in these statuses.
EDITABLE_STATUSES: Final = ("authenticated", "active")
# Invoices are fetched for this many of the caller's newest subscriptions (one Razorpay call each).
MAX_INVOICED_SUBSCRIPTIONS: Final = 5
MAX_HISTORY_ENTRIES: Final = 100
# The statuses `public.subscriptions.status` accepts (initial migration).
KNOWN_STATUSES: Final = frozenset(
    {"created", "authenticated", "active", "pending", "halted", "cancelled", "completed", "expired", "paused"}
)
VERIFY_FAILED_MESSAGE: Final = "The checkout could not be verified"
# A subscription whose payment method the customer may change: paid for, or being paid.
PORTAL_STATUSES: Final = ("authenticated", "active", "pending", "halted")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return iso_z(moment) if moment is not None else None


def _not_configured() -> UnavailableError:
    return UnavailableError(NOT_CONFIGURED_MESSAGE, details={"provider": PROVIDER})


def _plan_id(settings: Settings, tier: str) -> str:
    """The tier's Razorpay plan; 422 when it is not on sale, 503 when RAZORPAY_PLAN_IDS is malformed."""
    try:
        return plan_id_for(settings, tier)
    except ValueError:
        raise _not_configured() from None


# ---------------------------------------------------------------- views


def _view(row: repo.SubscriptionRow) -> SubscriptionView:
    verified_at: datetime | None = None
    raw_verified = row.metadata.get("checkout_verified_at")
    if isinstance(raw_verified, str):
        try:
            verified_at = datetime.fromisoformat(raw_verified)
        except ValueError:
            verified_at = None
    scheduled: ScheduledChange | None = None
    raw_scheduled = row.metadata.get("scheduled_change")
    if isinstance(raw_scheduled, Mapping):
        try:
            scheduled = ScheduledChange.model_validate(raw_scheduled)
        except PydanticValidationError:
            scheduled = None
    return SubscriptionView(
        id=row.id,
        razorpay_subscription_id=row.provider_subscription_id,
        tier=row.tier,
        plan_id=row.plan_id,
        status=row.status,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        paid_until=row.paid_until,
        grace_until=row.grace_until,
        cancel_at_period_end=row.cancel_at_period_end,
        canceled_at=row.canceled_at,
        checkout_verified_at=verified_at,
        scheduled_change=scheduled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _already_subscribed(row: repo.SubscriptionRow) -> ConflictError:
    # One that ends with its cycle is still in force until then: a cancel now ends it at once.
    cancel = "cancel it now first" if row.cancel_at_period_end else "cancel it first"
    return ConflictError(
        f"You already have a subscription; change it with /subscription/update or {cancel}",
        details={"subscription_id": row.provider_subscription_id, "status": row.status, "tier": row.tier},
    )


# ---------------------------------------------------------------- plans


def available_plans(settings: Settings) -> PlanList:
    """`GET /subscription/plans`: every tier with price, currency, quotas, features and whether it is on
    sale (a paid tier with a Razorpay plan configured)."""
    try:
        return PlanList(items=list_plans(settings))
    except ValueError:
        raise _not_configured() from None


# ---------------------------------------------------------------- create


def create_subscription(
    db: Database, principal: Principal, request: CreateSubscriptionRequest, razorpay: RazorpayClient
) -> CheckoutSession:
    """`POST /subscription/create`: a Razorpay subscription for the tier's plan, with `notes` carrying the
    user id and tier (the webhooks read them), stored as `created`. 409 when the caller already has a
    subscription in force (created, authenticated, active or pending; with a pending plan change too),
    naming it: it is changed with update or cancelled first. A halted or paused subscription is cancelled
    first (`_end_dormant`): Razorpay would revive it beside the new one."""
    plan_id = _plan_id(db.settings, request.tier)
    with db.user_transaction(principal) as conn:
        existing = repo.caller_subscription_in_force(conn)
    if existing is not None:
        raise _already_subscribed(existing)
    _end_dormant(db, principal, razorpay)

    notes = {"user_id": str(principal.user_id), "tier": request.tier}
    created = razorpay.create_subscription(plan_id, total_count=TOTAL_BILLING_CYCLES, notes=notes)
    _store_created(
        db, principal.user_id, created, tier=request.tier, plan_id=plan_id, notes=notes, razorpay=razorpay
    )
    return CheckoutSession(
        subscription_id=created.id, razorpay_key_id=razorpay.key_id, short_url=created.short_url
    )


def _store_created(
    db: Database,
    user_id: UUID,
    created: RazorpaySubscription,
    *,
    tier: str,
    plan_id: str,
    notes: Mapping[str, str],
    razorpay: RazorpayClient,
    replaces: repo.SubscriptionRow | None = None,
) -> repo.SubscriptionRow:
    """Record a subscription Razorpay has just created (for a plan change, linked to the one it
    `replaces`) in one service transaction. If that fails, the Razorpay subscription would be an orphan
    nobody pays: it is cancelled at Razorpay (best effort, logged) and the error goes on."""
    metadata: dict[str, Any] = {"notes": dict(notes), "short_url": created.short_url}
    try:
        with db.service_transaction() as conn:
            if not repo.lock_user(conn, user_id):
                raise UnauthorizedError("Unknown user")
            # Checked again under the users row lock: a concurrent create may have stored one meanwhile.
            other = repo.live_subscription_of(conn, user_id, alongside=replaces.id if replaces else None)
            if other is not None:
                raise _already_subscribed(other)
            row = repo.insert_created_subscription(
                conn,
                user_id=user_id,
                plan_id=plan_id,
                tier=tier,
                provider_subscription_id=created.id,
                metadata=metadata,
                replaces=replaces.id if replaces else None,
            )
    except Exception:
        _cancel_orphan(razorpay, created.id)
        raise
    logger.info(
        "subscription created",
        extra={"user_id": str(user_id), "subscription_id": str(row.id), "razorpay_subscription_id": created.id},
    )
    return row


def _cancel_orphan(razorpay: RazorpayClient, razorpay_subscription_id: str) -> None:
    try:
        razorpay.cancel_subscription(razorpay_subscription_id, at_cycle_end=False)
    except UpstreamError:
        logger.error(
            "could not cancel a razorpay subscription that was not recorded; cancel it in the dashboard",
            extra={"razorpay_subscription_id": razorpay_subscription_id},
        )
    else:
        logger.warning(
            "cancelled a razorpay subscription that could not be recorded",
            extra={"razorpay_subscription_id": razorpay_subscription_id},
        )


# ---------------------------------------------------------------- verify


def verify_checkout(
    db: Database, principal: Principal, request: VerifyRequest, razorpay: RazorpayClient
) -> VerifyResult:
    """`POST /subscription/verify`: Checkout's signature must be the HMAC of `payment_id|subscription_id`
    for the caller's own newest subscription that is awaiting or through checkout (`created`,
    `authenticated`, or already `active`/`pending` when the webhooks came first), as we stored it: the id
    the browser sends back must be that one too. Anything else is 400, with the same
    message whatever failed. Success marks `metadata.checkout_verified_at`; the tier still comes from the
    webhooks."""
    with db.user_transaction(principal) as conn:
        row = repo.caller_latest_subscription(conn, repo.CHECKOUT_STATUSES)
    if row is None:
        raise BadRequestError(VERIFY_FAILED_MESSAGE)
    stored_id = row.provider_subscription_id
    signature_ok = razorpay.verify_checkout_signature(
        request.razorpay_payment_id, stored_id, request.razorpay_signature
    )
    if not signature_ok or request.razorpay_subscription_id != stored_id:
        logger.warning(
            "checkout verification failed",
            extra={
                "user_id": str(principal.user_id),
                "signature_ok": signature_ok,
                "subscription_id": str(row.id),
            },
        )
        raise BadRequestError(VERIFY_FAILED_MESSAGE)

    marks = {"checkout_verified_at": _iso(_now()), "checkout_payment_id": request.razorpay_payment_id}
    with db.service_transaction() as conn:
        updated = repo.merge_metadata(conn, subscription_id=row.id, user_id=principal.user_id, metadata=marks)
    if updated is None:  # deleted in between
        raise BadRequestError(VERIFY_FAILED_MESSAGE)
    return VerifyResult(subscription_id=stored_id, status=updated.status)


# ---------------------------------------------------------------- cancel


def _record_cancel(
    conn: Connection,
    row: repo.SubscriptionRow,
    answer: RazorpaySubscription,
    *,
    at_cycle_end: bool,
) -> repo.SubscriptionRow | None:
    """Record what Razorpay answered to a cancel: `cancelled` now, or its status kept with
    `cancel_at_period_end`. The tier is left to the webhooks."""
    cancelled_now = answer.status == "cancelled"
    metadata: dict[str, Any] = {"cancel_requested_at": _iso(_now()), "cancel_at_cycle_end": at_cycle_end}
    return repo.record_cancellation(
        conn,
        subscription_id=row.id,
        user_id=row.user_id,
        status=answer.status if answer.status in KNOWN_STATUSES else None,
        at_period_end=at_cycle_end and not cancelled_now,
        canceled_at=(from_epoch(answer.ended_at) or _now()) if cancelled_now else None,
        metadata=metadata,
    )


def cancel_subscription(
    db: Database, principal: Principal, request: CancelRequest, razorpay: RazorpayClient
) -> CancelResult:
    """`POST /subscription/cancel`: cancel the caller's subscription in force at Razorpay, at the end of
    the paid cycle (default) or now, and a plan change awaiting activation with it (now: it has no paid
    cycle). A subscription still `created` (never paid) is cancelled now: it has no cycle to finish.
    Asking again for a cancel at cycle end that is already scheduled changes nothing at Razorpay.
    Without one, a halted or paused subscription is cancelled (now); 404 without either.

    The replacement is cancelled and recorded first: when the second cancel fails, the caller has the
    subscription in force alone, as it was, and may ask again."""
    with db.user_transaction(principal) as conn:
        row = repo.caller_subscription_in_force(conn)
        pending = repo.caller_pending_replacement(conn)
    if row is None:
        ended = _end_dormant(db, principal, razorpay)
        if not ended:
            raise NotFoundError("You have no subscription to cancel")
        return CancelResult(subscription=_view(ended[0]))
    dropped = _cancel_now(db, pending, razorpay) if pending is not None else None
    at_cycle_end = request.at_cycle_end and row.status != "created"
    updated: repo.SubscriptionRow | None = row
    if not (at_cycle_end and row.cancel_at_period_end):
        answer = cancel_at_razorpay(razorpay, row.provider_subscription_id, at_cycle_end=at_cycle_end)
        with db.service_transaction() as conn:
            updated = _record_cancel(conn, row, answer, at_cycle_end=at_cycle_end)
        logger.info(
            "subscription cancel requested",
            extra={"subscription_id": str(row.id), "at_cycle_end": at_cycle_end, "razorpay_status": answer.status},
        )
    return CancelResult(
        subscription=_view(updated or row), replacement=_view(dropped) if dropped is not None else None
    )


def _cancel_now(db: Database, row: repo.SubscriptionRow, razorpay: RazorpayClient) -> repo.SubscriptionRow:
    """Cancel one subscription now, at Razorpay then here (a plan change's replacement awaiting
    activation, or a dormant one); no other is touched. Returns it as recorded."""
    answer = cancel_at_razorpay(razorpay, row.provider_subscription_id, at_cycle_end=False)
    with db.service_transaction() as conn:
        recorded = _record_cancel(conn, row, answer, at_cycle_end=False)
    logger.info(
        "subscription cancelled now",
        extra={"subscription_id": str(row.id), "was": row.status, "razorpay_status": answer.status},
    )
    return recorded or row


def _drop_pending_change(db: Database, pending: repo.SubscriptionRow, razorpay: RazorpayClient) -> None:
    """Drop a plan change the caller no longer wants. Razorpay is asked first: one whose Checkout was
    completed meanwhile (its webhooks not here yet) is paid for, and is not cancelled under the customer:
    409."""
    at_razorpay = razorpay.fetch_subscription(pending.provider_subscription_id)
    if at_razorpay.status not in repo.AWAITING_STATUSES and at_razorpay.status not in ENDED_STATUSES:
        raise ConflictError(
            "Your plan change was paid for meanwhile; it takes effect in a moment",
            details={"tier": pending.tier, "subscription_id": pending.provider_subscription_id},
        )
    _cancel_now(db, pending, razorpay)


def _end_dormant(db: Database, principal: Principal, razorpay: RazorpayClient) -> list[repo.SubscriptionRow]:
    """Cancel the caller's halted or paused subscriptions now. They grant nothing, but Razorpay revives a
    halted one whose payment method is renewed and a paused one that is resumed: beside a new
    subscription, that would charge twice."""
    with db.user_transaction(principal) as conn:
        dormant = repo.caller_subscriptions_in(conn, repo.DORMANT_STATUSES)
    return [_cancel_now(db, row, razorpay) for row in dormant]


# ---------------------------------------------------------------- update (tier change)


def update_subscription(
    db: Database, principal: Principal, request: UpdateRequest, razorpay: RazorpayClient
) -> UpdateResult:
    """`POST /subscription/update`: move the caller's newest live subscription to another paid tier.

    The rule (see the module docstring): an edit of the plan in place when Razorpay allows it, `now` for
    an upgrade and at `cycle_end` for a downgrade; otherwise the old subscription is replaced (cancelled
    now for an upgrade, at cycle end for a downgrade) by a new one that the client pays through Checkout.
    404 without a live subscription, 409 when it already is on that tier, 422 for a tier not on sale.

    With a plan change awaiting activation: its tier again answers its Checkout again (a double click);
    any other tier drops it first (cancelled at Razorpay now), and for the tier in force that is all
    (`reverted`). A replacement whose Checkout is done and whose old subscription is owed its cancel
    already (a downgrade set up for the end of the cycle) is not dropped: 409."""
    settings = db.settings
    new_tier = request.tier
    plan_id = _plan_id(settings, new_tier)
    with db.user_transaction(principal) as conn:
        current = repo.caller_subscription_in_force(conn)
        pending = repo.caller_pending_replacement(conn)
    if current is None:
        raise NotFoundError("You have no subscription to change; create one")
    if pending is not None:
        if pending.tier == new_tier:
            return _recreated(pending, upgrade=is_upgrade(current.tier, new_tier), key_id=razorpay.key_id)
        if pending.replaced_cancel is not None:
            raise ConflictError(
                "Your plan change is set up at Razorpay and takes effect at the end of the current cycle;"
                " change plan again after that, or cancel",
                details={"tier": pending.tier, "subscription_id": pending.provider_subscription_id},
            )
        _drop_pending_change(db, pending, razorpay)
        if current.tier == new_tier:
            return _reverted(current, key_id=razorpay.key_id)
    elif current.tier == new_tier:
        raise ConflictError("Your subscription is already on this tier", details={"tier": new_tier})
    upgrade = is_upgrade(current.tier, new_tier)
    schedule: ScheduleChangeAt = "now" if upgrade else "cycle_end"

    if current.status in EDITABLE_STATUSES:
        try:
            answer = razorpay.edit_subscription(
                current.provider_subscription_id, plan_id=plan_id, schedule_change_at=schedule
            )
        except RazorpayRefusedError:
            logger.info(
                "razorpay refused the plan change; replacing the subscription",
                extra={"subscription_id": str(current.id), "to_tier": new_tier},
            )
        else:
            return _edited(
                db,
                settings,
                current,
                answer,
                new_tier=new_tier,
                plan_id=plan_id,
                schedule=schedule,
                key_id=razorpay.key_id,
            )
    return _replace(db, principal, current, new_tier=new_tier, plan_id=plan_id, upgrade=upgrade, razorpay=razorpay)


def _edited(
    db: Database,
    settings: Settings,
    current: repo.SubscriptionRow,
    answer: RazorpaySubscription,
    *,
    new_tier: TierName,
    plan_id: str,
    schedule: ScheduleChangeAt,
    key_id: str,
) -> UpdateResult:
    # As Razorpay answered: the plan now in force, and a change scheduled for later if it says so.
    answered_tier = tier_for_plan(settings, answer.plan_id)
    scheduled: dict[str, Any] | None = None
    if answer.has_scheduled_changes and answer.plan_id != plan_id:
        at = from_epoch(answer.change_scheduled_at or answer.current_end)
        scheduled = {"tier": new_tier, "plan_id": plan_id, "at": _iso(at)}
    with db.service_transaction() as conn:
        repo.record_plan_change(
            conn,
            subscription_id=current.id,
            user_id=current.user_id,
            plan_id=answer.plan_id if answered_tier is not None else None,
            tier=answered_tier,
            scheduled_change=scheduled,
        )
    logger.info(
        "subscription plan changed at razorpay",
        extra={"subscription_id": str(current.id), "to_tier": new_tier, "schedule_change_at": schedule},
    )
    return UpdateResult(
        change="edited",
        tier=new_tier,
        schedule_change_at=schedule,
        checkout_required=False,
        subscription_id=answer.id,
        razorpay_key_id=key_id,
        short_url=answer.short_url,
    )


def _reverted(current: repo.SubscriptionRow, *, key_id: str) -> UpdateResult:
    """The pending plan change was dropped: the subscription in force stays as it is."""
    short_url = current.metadata.get("short_url")
    return UpdateResult(
        change="reverted",
        tier=_tier(current.tier),
        schedule_change_at="now",
        checkout_required=False,
        subscription_id=current.provider_subscription_id,
        razorpay_key_id=key_id,
        short_url=short_url if isinstance(short_url, str) else None,
    )


def _recreated(row: repo.SubscriptionRow, *, upgrade: bool, key_id: str) -> UpdateResult:
    short_url = row.metadata.get("short_url")
    return UpdateResult(
        change="recreated",
        tier=_tier(row.tier),
        schedule_change_at="now" if upgrade else "cycle_end",
        checkout_required=True,
        subscription_id=row.provider_subscription_id,
        razorpay_key_id=key_id,
        short_url=short_url if isinstance(short_url, str) else None,
    )


def _tier(value: str) -> TierName:
    for tier in ("pro", "enterprise", "free"):
        if tier == value:
            return tier
    raise ValueError(f"unknown tier {value!r}")


def _replace(
    db: Database,
    principal: Principal,
    current: repo.SubscriptionRow,
    *,
    new_tier: TierName,
    plan_id: str,
    upgrade: bool,
    razorpay: RazorpayClient,
) -> UpdateResult:
    # A downgrade keeps the paid cycle: the new subscription starts charging when it ends (the old one is
    # cancelled at that cycle's end once Razorpay has the new one authenticated).
    at_cycle_end = not upgrade and current.status != "created"
    start_at: int | None = None
    period_end = current.current_period_end
    if at_cycle_end and current.status in EDITABLE_STATUSES and period_end is not None and period_end > _now():
        start_at = int(period_end.timestamp())

    notes = {"user_id": str(principal.user_id), "tier": new_tier, "replaces": current.provider_subscription_id}
    created = razorpay.create_subscription(
        plan_id, total_count=TOTAL_BILLING_CYCLES, notes=notes, start_at=start_at
    )
    _store_created(
        db,
        principal.user_id,
        created,
        tier=new_tier,
        plan_id=plan_id,
        notes=notes,
        razorpay=razorpay,
        replaces=current,
    )
    logger.info(
        "plan change by replacement awaits checkout",
        extra={"subscription_id": str(current.id), "to_tier": new_tier, "razorpay_subscription_id": created.id},
    )
    return UpdateResult(
        change="recreated",
        tier=new_tier,
        schedule_change_at="now" if upgrade else "cycle_end",
        checkout_required=True,
        subscription_id=created.id,
        razorpay_key_id=razorpay.key_id,
        short_url=created.short_url,
    )


# ---------------------------------------------------------------- reading


def invoices(
    db: Database, principal: Principal, razorpay: RazorpayClient, page: PageRequest | None = None
) -> InvoiceList:
    """`GET /subscription/invoices`: Razorpay's invoices of the caller's newest subscriptions (those that
    can have one: not `created` or `expired`), newest first, a page at a time (the cursor holds the last
    invoice's time and id)."""
    page = page or PageRequest()
    after: tuple[datetime, str] | None = None
    if page.cursor:
        keys = decode_cursor(page.cursor, {"issued_at": datetime.fromisoformat, "id": str})
        after = (keys["issued_at"], keys["id"])
    with db.user_transaction(principal) as conn:
        rows = repo.caller_invoiced_subscriptions(conn, MAX_INVOICED_SUBSCRIPTIONS)
    items: list[Invoice] = []
    for row in rows:
        for invoice in razorpay.subscription_invoices(row.provider_subscription_id):
            if invoice.subscription_id not in (None, row.provider_subscription_id):
                continue  # Razorpay filtered by subscription; never show another one's
            items.append(
                Invoice(
                    id=invoice.id,
                    amount=invoice.amount,
                    currency=invoice.currency,
                    status=invoice.status,
                    issued_at=from_epoch(invoice.issued_at),
                    paid_at=from_epoch(invoice.paid_at),
                    short_url=invoice.short_url,
                )
            )
    oldest = datetime.min.replace(tzinfo=UTC)

    def key(item: Invoice) -> tuple[datetime, str]:
        return (item.issued_at or oldest, item.id)

    items.sort(key=key, reverse=True)
    if after is not None:
        items = [item for item in items if key(item) < after]
    listed = page_of(
        items[: page.limit + 1], page.limit, lambda i: {"issued_at": key(i)[0].isoformat(), "id": i.id}
    )
    return InvoiceList(items=listed.items, next_cursor=listed.next_cursor)


def current_subscription(db: Database, principal: Principal) -> CurrentSubscription:
    """`GET /subscription`: the subscription in force (or null), a plan change awaiting Razorpay's
    activation (or null), and the tier history, newest first."""
    with db.user_transaction(principal) as conn:
        row = repo.caller_subscription_in_force(conn)
        replacement = repo.caller_pending_replacement(conn)
        history = repo.caller_history(conn, MAX_HISTORY_ENTRIES)
    return CurrentSubscription(
        subscription=_view(row) if row is not None else None,
        replacement=_view(replacement) if replacement is not None else None,
        history=[HistoryEntry.model_validate(entry, from_attributes=True) for entry in history],
    )


# ---------------------------------------------------------------- payment method


def payment_method_portal(db: Database, principal: Principal, razorpay: RazorpayClient) -> PaymentMethodPortal:
    """`GET /subscription/portal`: where the customer changes the card or mandate of the subscription in
    force. Razorpay has no customer portal API; what it offers is the subscription's hosted page (its
    `short_url`, the page Razorpay's own payment-failure emails link to), where the customer
    authenticates a new card or mandate; Razorpay then charges a `pending` subscription's last invoice on
    it. The subscription is fetched from Razorpay so the link is the one Razorpay holds now. 404 without a
    subscription that is paid for or being paid (authenticated, active, pending or halted)."""
    with db.user_transaction(principal) as conn:
        row = repo.caller_latest_subscription(conn, PORTAL_STATUSES)
    if row is None:
        raise NotFoundError("You have no subscription whose payment method can be changed")
    current = razorpay.fetch_subscription(row.provider_subscription_id)
    if current.status not in PORTAL_STATUSES or not current.short_url:
        raise NotFoundError("You have no subscription whose payment method can be changed")
    return PaymentMethodPortal(url=current.short_url)
