"""Erasing an account (`DELETE /user`, and the admin's `DELETE /admin/users/{id}`), in an order that a
retry can always finish:

1. every subscription that has not ended is cancelled at Razorpay now, and the answer recorded. If
   Razorpay fails, the erasure stops here with 502 `UPSTREAM_ERROR`: nothing is erased (a customer must
   never keep paying for an account that is gone);
2. the external steps (`EXTERNAL_STEPS`): what the account holds outside PostgreSQL: every S3 object
   under `users/<user_id>/` (batched DeleteObjects), and the document files (`knowledge/<workspace_id>/`)
   of the workspaces the erasure deletes (the personal one, those the user alone owns), before the rows
   that list them go;
3. one service transaction (`oneai_private.erase_user`): usage records lose the user id (kept for
   accounting), then the auth user is deleted through the database, which deletes `public.users` and by
   `on delete cascade` every row of the user: conversations, messages, share links, quota rows,
   subscriptions and their history, API keys.

An `on_erased` hook runs inside that last transaction, after the rows are gone: what it writes commits or
rolls back with the erasure itself (the admin's audit entry, `DELETE /admin/users/{id}`). It is given the
report, with how many rows of each kind the erasure deleted, counted in the same transaction.

Each step is idempotent: a subscription already cancelled is skipped (or, when Razorpay says it has
ended, recorded), an external step deletes what is left, and erasing a user who is gone is a no-op. So a
retry after a failure anywhere finishes the job, and `DELETE /user` answers 204 again.

The auth user is deleted through the database as the service role (a SECURITY DEFINER function), not
through Supabase's Admin API: it is one transaction with the rest (no half-erased account when a network
call fails), it needs no service-role API key in the functions, and it works the same on the local
PostgreSQL the tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

from oneai.attachments.service import erase_user_objects
from oneai.billing.razorpay_client import RazorpayClient, get_razorpay_client
from oneai.billing.replacement import cancel_at_razorpay, record_cancel_answer
from oneai.db import account_data as repo
from oneai.db.connection import Connection, Database
from oneai.errors import UpstreamError
from oneai.knowledge.documents import erase_workspace_files
from oneai.logging import logger

# One external step: delete what `user_id` holds outside PostgreSQL; must succeed when run again.
ExternalStep = Callable[[Database, UUID], None]
EXTERNAL_STEPS: Final[tuple[ExternalStep, ...]] = (erase_user_objects, erase_workspace_files)
RAZORPAY_FAILED_MESSAGE: Final = (
    "Your subscription could not be cancelled at the payment provider, so nothing was erased; try again"
)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    subscriptions_cancelled: int
    # False when the account was erased already (a retry that found nothing left).
    erased: bool
    # Rows of the user the last step deleted, by kind (counted only when an `on_erased` hook asks).
    rows_erased: Mapping[str, int] = field(default_factory=dict)


# Called inside the last service transaction, after the rows are erased (see the module docstring).
ErasureHook = Callable[[Connection, ErasureReport], None]


def erase_account(
    db: Database,
    user_id: UUID,
    *,
    razorpay: Callable[[], RazorpayClient] = get_razorpay_client,
    external_steps: Sequence[ExternalStep] = EXTERNAL_STEPS,
    on_erased: ErasureHook | None = None,
) -> ErasureReport:
    """Erase `user_id`'s account (see the module docstring). Raises UpstreamError (502) when Razorpay
    fails, UnavailableError (503) when billing is not configured but a subscription must be cancelled."""
    with db.service_transaction() as conn:
        unended = repo.unended_subscriptions_of(conn, user_id)
    client = razorpay() if unended else None
    for row in unended:
        assert client is not None
        try:
            answer = cancel_at_razorpay(client, row.provider_subscription_id, at_cycle_end=False)
        except UpstreamError as error:
            logger.warning(
                "account erasure stopped: razorpay did not cancel a subscription",
                extra={"user_id": str(user_id), "subscription_id": str(row.id)},
            )
            raise UpstreamError(RAZORPAY_FAILED_MESSAGE, details=error.details) from None
        with db.service_transaction() as conn:
            record_cancel_answer(
                conn,
                subscription_id=row.id,
                user_id=user_id,
                answer=answer,
                at_cycle_end=False,
                metadata={"cancelled_for": "account_erasure"},
            )
    for step in external_steps:
        step(db, user_id)
    with db.service_transaction() as conn:
        rows = repo.rows_of_user(conn, user_id) if on_erased is not None else {}
        erased = repo.erase_user(conn, user_id)
        report = ErasureReport(subscriptions_cancelled=len(unended), erased=erased, rows_erased=rows)
        if on_erased is not None:
            on_erased(conn, report)
    logger.info(
        "account erased",
        extra={"user_id": str(user_id), "subscriptions_cancelled": len(unended), "erased": erased},
    )
    return report
