"""The admin's workspaces (API.md "Admin", issue 23): the list with owner, members and stats, and
suspension, and credit grants. A suspended workspace's chatbots and widget stop answering: the platform's answering paths
read `workspaces.suspended_at`; members keep managing it. Writes are audited like the admin's other
writes (`oneai.admin.audit.admin_write`), each a real change or an error (409 when already in that state,
404 for no such workspace)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from oneai.admin import models, paging
from oneai.admin.audit import admin_transaction, admin_write
from oneai.auth import Principal
from oneai.credits import service as credits
from oneai.credits.models import AdjustRequest, GrantRequest
from oneai.db import workspace_admin as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ConflictError, NotFoundError
from oneai.events import get_publisher
from oneai.money import balance_decimal
from oneai.pagination import Page
from oneai.quota.service import iso_utc


def _workspace(row: repo.WorkspaceRow) -> models.AdminWorkspace:
    purge_after = row.deleted_at + timedelta(days=repo.PURGE_AFTER_DAYS) if row.deleted_at else None
    return models.AdminWorkspace(
        id=row.id,
        name=row.name,
        slug=row.slug,
        industry=row.industry,
        personal=row.personal,
        owner=models.WorkspaceOwner(id=row.owner_id, email=row.owner_email, name=row.owner_name),
        stats=models.WorkspaceStats(
            chatbots=row.stat_chatbots,
            documents=row.stat_documents,
            storage_bytes=row.stat_storage_bytes,
            messages_30d=row.stat_messages_30d,
            credits_balance=row.stat_credits_balance or Decimal(0),
            members=row.stat_members,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        suspended_at=row.suspended_at,
        deleted_at=row.deleted_at,
        purge_after=purge_after,
    )


def list_workspaces(
    db: Database, admin: Principal, query: models.WorkspaceListQuery
) -> Page[models.AdminWorkspace]:
    start = paging.after(query.cursor, "created_at")
    with admin_transaction(db, admin) as conn:
        rows = repo.list_workspaces(
            conn, q=query.q, owner_id=query.owner_id, status=query.status, after=start, limit=query.limit + 1
        )
    rows, cursor = paging.one_page(rows, query.limit, "created_at", lambda r: (r.created_at, r.id))
    return Page(items=[_workspace(r) for r in rows], next_cursor=cursor)


def _suspension(suspended_at: datetime | None) -> dict[str, Any]:
    return {"suspended_at": iso_utc(suspended_at)}


def _set_suspension(
    db: Database, admin: Principal, workspace_id: UUID, *, suspend: bool, reason: str | None
) -> models.AdminWorkspace:
    action = "workspace.suspend" if suspend else "workspace.unsuspend"
    with admin_write(db, admin, action, "workspace", workspace_id, reason=reason) as (conn, change):
        state = repo.lock_workspace(conn, workspace_id)
        if state is None:
            raise NotFoundError("No such workspace")
        if (state.suspended_at is not None) == suspend:
            raise ConflictError(
                "The workspace is already suspended" if suspend else "The workspace is not suspended"
            )
        change.before = _suspension(state.suspended_at)
        after = repo.set_workspace_suspension(conn, workspace_id, datetime.now(UTC) if suspend else None)
        change.after = _suspension(after)
        row = repo.get_workspace(conn, workspace_id)
    assert row is not None
    return _workspace(row)


def suspend_workspace(
    db: Database, admin: Principal, workspace_id: UUID, body: models.SuspendRequest
) -> models.AdminWorkspace:
    """Its chatbots and widget stop answering until it is unsuspended; its members keep their access."""
    return _set_suspension(db, admin, workspace_id, suspend=True, reason=body.reason)


def unsuspend_workspace(db: Database, admin: Principal, workspace_id: UUID) -> models.AdminWorkspace:
    return _set_suspension(db, admin, workspace_id, suspend=False, reason=None)


def grant_credits(
    db: Database, admin: Principal, workspace_id: UUID, body: GrantRequest
) -> models.AdminCreditGrant:
    """Credits given by an admin (a `grant` transaction with its reason), audited as `workspace.credits_grant`
    with the balance before and after."""
    transaction_id, balance = _change_credits(
        db, admin, workspace_id, body, change_balance=credits.grant, done="granted"
    )
    return models.AdminCreditGrant(
        workspace_id=workspace_id, transaction_id=transaction_id, amount=body.amount, balance=balance
    )


def adjust_credits(
    db: Database, admin: Principal, workspace_id: UUID, body: AdjustRequest
) -> models.AdminCreditAdjustment:
    """A correction by an admin (an `adjustment` transaction with its reason, signed; a debit at most the
    available balance, 422 otherwise), audited as `workspace.credits_adjust` with the balance before and after."""
    transaction_id, balance = _change_credits(
        db, admin, workspace_id, body, change_balance=credits.adjust, done="adjusted"
    )
    return models.AdminCreditAdjustment(
        workspace_id=workspace_id, transaction_id=transaction_id, amount=body.amount, balance=balance
    )


def _change_credits(
    db: Database,
    admin: Principal,
    workspace_id: UUID,
    body: GrantRequest | AdjustRequest,
    *,
    change_balance: Callable[[Connection, UUID, Decimal, str, UUID], dict[str, Any]],
    done: Literal["granted", "adjusted"],
) -> tuple[UUID, Decimal]:
    """An admin's credits transaction, audited as `workspace.credits_grant`/`_adjust` with the balance
    before and after; (its id, the balance after). A debit that took the balance under the workspace's
    low-balance threshold is announced after the commit, as a reply's settle is."""
    action = "workspace.credits_grant" if done == "granted" else "workspace.credits_adjust"
    with admin_write(db, admin, action, "workspace", workspace_id, reason=body.reason) as (conn, change):
        answer = change_balance(conn, workspace_id, body.amount, body.reason, admin.user_id)
        balance = Decimal(str(answer["balance"]))
        change.before = {"credits_balance": balance_decimal(balance - body.amount)}
        change.after = {"credits_balance": balance_decimal(balance), done: balance_decimal(body.amount)}
    credits.announce_low_balance(get_publisher(), credits.low_balance_of(answer))
    return UUID(str(answer["transaction_id"])), balance
