"""The one way an admin reads and writes: a service transaction on purpose, and for a write, its audit
entry in that same transaction.

    with admin_write(db, admin, "user.suspend", "user", user_id, reason=body.reason) as (conn, change):
        change.before = {...}
        ...write...
        change.after = {...}

The entry (actor, action, target, before, after, reason, at) is inserted when the block ends without an
error, just before the commit; an error rolls back the change and the entry together. A block that sets
no `after` wrote nothing and leaves no entry. The audit table refuses UPDATE and DELETE (its migration).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from oneai.auth import Principal
from oneai.db import admin as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ForbiddenError, UnauthorizedError
from oneai.logging import logger

TargetType = Literal["user", "subscription", "workspace"]


@dataclass(slots=True)
class Change:
    """What a write changed, as the audit entry shows it (ids and fields, never personal text)."""

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = field(default=None)
    # Set when the target id is known only inside the write.
    target_id: str | None = None


@contextmanager
def admin_transaction(db: Database, admin: Principal) -> Iterator[Connection]:
    """A service transaction for `admin` (already checked to hold the admin claim). A suspended admin is
    403 like any suspended user; an admin without a users row is 401 like any unknown user."""
    if not admin.is_admin:
        raise ForbiddenError("Admins only")
    with db.service_transaction() as conn:
        suspended = repo.actor_suspended(conn, admin.user_id)
        if suspended is None:
            raise UnauthorizedError("Unknown user")
        if suspended:
            raise ForbiddenError("This account is suspended")
        yield conn


@contextmanager
def admin_write(
    db: Database,
    admin: Principal,
    action: str,
    target_type: TargetType,
    target_id: UUID | str,
    *,
    reason: str | None = None,
) -> Iterator[tuple[Connection, Change]]:
    with admin_transaction(db, admin) as conn:
        change = Change()
        yield conn, change
        if change.after is not None or change.before is not None:
            entry_id = repo.insert_audit_entry(
                conn,
                actor_id=admin.user_id,
                action=action,
                target_type=target_type,
                target_id=change.target_id or str(target_id),
                before=change.before,
                after=change.after,
                reason=reason,
            )
            # Ids only in the log line; the entry itself holds the details.
            logger.info(
                "admin write",
                extra={
                    "audit_entry_id": str(entry_id),
                    "action": action,
                    "target_type": target_type,
                    "target_id": change.target_id or str(target_id),
                    "actor_id": str(admin.user_id),
                },
            )
